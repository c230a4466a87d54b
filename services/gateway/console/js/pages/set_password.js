// Setting a password from an invitation or reset link (#/set-password?token=...): the
// link's secret stays in the fragment, which the browser never sends to a server log.
import { t } from "../i18n.js";
import { setPassword } from "../session.js";
import { h, messageBox, notice, problemText, replace, showFieldErrors } from "../ui.js";

export function render(view) {
  const token = new URLSearchParams(location.hash.split("?")[1] || "").get("token") || "";
  const result = h("div", { "aria-live": "polite" });
  const password = h("input", { id: "password", name: "password", type: "password", required: true, minlength: 10, autocomplete: "new-password" });
  const again = h("input", { id: "password-again", name: "again", type: "password", required: true, autocomplete: "new-password" });
  const form = h("form", { class: "card stack", novalidate: true },
    h("p", { class: "muted" }, t("set_password_help")),
    h("div", { class: "field" }, h("label", { for: "password" }, t("new_password")), password),
    h("div", { class: "field" }, h("label", { for: "password-again" }, t("new_password_again")), again),
    result,
    h("button", { type: "submit", class: "primary" }, t("set_password_submit")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (password.value !== again.value) {
      replace(result, messageBox(t("passwords_differ")));
      again.focus();
      return;
    }
    const refused = await setPassword(token, password.value);
    if (!refused) {
      notice(t("password_set"), "info");
      location.hash = "#/customers";
      return;
    }
    const errors = refused.data?.errors || [];
    const problem = { status: refused.status, message: refused.data?.detail || `HTTP ${refused.status}`, errors, body: refused.data || {} };
    if (errors.some((e) => e.field === "token")) replace(result, messageBox(t("link_unusable")));
    else if (refused.status === 422) showFieldErrors(form, errors, result);
    else replace(result, messageBox(problemText(problem)));
  });
  replace(view, h("h1", {}, t("set_password_title")),
    token ? form : messageBox(t("link_unusable")));
  password.focus();
}
