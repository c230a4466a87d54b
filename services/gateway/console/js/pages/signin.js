// Sign-in: tenant, e-mail and password; the company's identity provider when one is set
// up; and, folded away, a pasted token (from `crm token`, for scripts and development).
import { api } from "../api.js";
import { t } from "../i18n.js";
import { session, signIn, signInMethods } from "../session.js";
import { h, messageBox, notice, problemText, replace } from "../ui.js";

const TENANT_KEY = "crm.console.tenant";
// Why single sign-on sent the user back (the gateway's codes, decision 0108).
const SSO_ERRORS = new Set(["state", "provider_error", "no_tenant", "no_roles", "disabled", "bad_id_token", "code_refused", "no_id_token", "provider_unreachable"]);

function field(id, label, attrs) {
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, name: id, required: true, ...attrs }));
}

function tokenForm() {
  const token = h("textarea", { id: "token", name: "token", rows: 5, required: true, autocomplete: "off", spellcheck: "false" });
  const result = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "stack" },
    h("div", { class: "field" }, h("label", { for: "token" }, t("signin_token")), token),
    h("p", { class: "muted small" }, t("signin_help")),
    result,
    h("button", { type: "submit", id: "token-submit" }, t("signin_with_token")));
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
  return h("details", { class: "token-signin" }, h("summary", {}, t("signin_token_summary")), form);
}

export async function render(view) {
  const error = new URLSearchParams(location.hash.split("?")[1] || "").get("error");
  const result = h("div", { "aria-live": "polite" },
    error ? messageBox(t(SSO_ERRORS.has(error) ? `sso_error_${error}` : "sso_error")) : null);
  const tenant = field("tenant", t("signin_tenant"), { autocomplete: "organization", value: localStorage.getItem(TENANT_KEY) || "" });
  const email = field("email", t("signin_email"), { type: "email", autocomplete: "username" });
  const password = field("password", t("signin_password"), { type: "password", autocomplete: "current-password" });
  const submit = h("button", { type: "submit", class: "primary" }, t("signin_submit"));
  const form = h("form", { class: "card stack", id: "password-signin" }, tenant, email, password, result, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    const values = Object.fromEntries(new FormData(form));
    const refused = await signIn(values.tenant.trim(), values.email.trim(), values.password);
    submit.disabled = false;
    if (!refused) {
      localStorage.setItem(TENANT_KEY, values.tenant.trim());
      notice("");
      location.hash = "#/customers";
      return;
    }
    const text = refused.status === 401 ? t("signin_refused")
      : refused.status === 503 ? t("signin_unavailable")
        : problemText({ status: refused.status, message: refused.data?.detail || `HTTP ${refused.status}`, errors: refused.data?.errors || [] });
    replace(result, messageBox(text));
    form.querySelector("#password").select();
  });
  const methods = await signInMethods();
  const sso = methods.single_sign_on
    ? h("a", { class: "button primary sso", href: "/auth/oidc/start", id: "sso" }, t("signin_sso", { provider: methods.single_sign_on }))
    : null;
  replace(view, h("h1", {}, t("signin_title")),
    sso ? h("div", { class: "card stack" }, sso) : null,
    methods.password ? form : null,
    h("div", { class: "card" }, tokenForm()));
  (methods.password ? form.querySelector(localStorage.getItem(TENANT_KEY) ? "#email" : "#tenant") : view.querySelector("summary"))?.focus();
}
