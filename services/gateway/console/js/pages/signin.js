// Sign-in for local use: paste a token from `crm token`; the gateway says who it is.
import { api } from "../api.js";
import { t } from "../i18n.js";
import { session } from "../session.js";
import { h, messageBox, notice, problemText, replace } from "../ui.js";

export function render(view) {
  const token = h("textarea", { id: "token", name: "token", rows: 5, required: true, autocomplete: "off", spellcheck: "false" });
  const result = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card stack" },
    h("div", { class: "field" }, h("label", { for: "token" }, t("signin_token")), token),
    h("p", { class: "muted small" }, t("signin_help")),
    result,
    h("button", { type: "submit", class: "primary" }, t("signin_submit")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = token.value.trim().replace(/^Bearer\s+/i, "");
    try {
      const { data } = await api("me", { token: value });
      session.start(value, data);
      notice("");
      location.hash = "#/customers";
    } catch (problem) {
      const reason = problem.status === 401 ? t("signin_bad_token", { reason: problem.message }) : problemText(problem);
      replace(result, messageBox(reason));
      token.focus();
    }
  });
  replace(view, h("h1", {}, t("signin_title")), form);
  token.focus();
}
