// Users (admins): who may sign in to the console and in which roles. Inviting shows a
// one-time link to pass on (an e-mail, a chat message); a reset shows a new one and
// ends the user's sessions; disabling ends them at once.
import { api, get } from "../api.js";
import { t } from "../i18n.js";
import { session } from "../session.js";
import { confirmDialog, h, messageBox, problemText, replace, section, showFieldErrors, table, when } from "../ui.js";

const ROLES = ["admin", "manager", "sales", "support", "marketing", "viewer"];

function roleChoices(prefix, chosen) {
  return h("fieldset", { class: "roles" },
    h("legend", {}, t("users_roles")),
    ROLES.map((role) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "roles", value: role, id: `${prefix}-${role}`, checked: chosen.includes(role) }),
      ` ${t(`role_${role}`)}`)));
}

function linkBox(answer) {
  const url = h("input", { id: "user-link", readonly: true, value: answer.url, "aria-label": t("users_link") });
  const copy = h("button", { type: "button", onclick: () => { url.select(); navigator.clipboard?.writeText(answer.url); } }, t("copy"));
  return h("div", { class: "message info stack", role: "status" },
    h("p", {}, t(answer.purpose === "reset" ? "users_reset_link" : "users_invitation_link", { email: answer.user.email, until: when(answer.expires_at) })),
    h("div", { class: "row" }, url, copy));
}

export function render(view) {
  const listBox = h("section", { class: "card wide", "aria-labelledby": "h-users" });
  const outcome = h("div", { "aria-live": "polite" });
  const general = h("div");
  const invite = h("form", { class: "card stack", id: "invite", novalidate: true, "aria-labelledby": "h-invite" },
    h("h2", { id: "h-invite" }, t("users_invite")),
    h("div", { class: "field" }, h("label", { for: "invite-email" }, t("signin_email")),
      h("input", { id: "invite-email", name: "email", type: "email", required: true, autocomplete: "off" })),
    h("div", { class: "field" }, h("label", { for: "invite-name" }, t("users_name")),
      h("input", { id: "invite-name", name: "name", required: true, autocomplete: "off" })),
    roleChoices("invite", ["sales"]),
    general,
    h("button", { type: "submit", class: "primary" }, t("users_invite_submit")));

  function chosenRoles(form) {
    return [...form.querySelectorAll('input[name="roles"]:checked')].map((box) => box.value);
  }

  invite.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = { email: invite.elements.email.value.trim(), name: invite.elements.name.value.trim(), roles: chosenRoles(invite) };
    try {
      const { data } = await api("users", { method: "POST", body: values });
      showFieldErrors(invite, [], general);
      invite.reset();
      replace(outcome, linkBox(data));
      await load();
    } catch (problem) {
      if (problem.status === 422) showFieldErrors(invite, problem.errors, general);
      else replace(general, messageBox(problemText(problem)));
    }
  });

  async function act(path, body, confirmText) {
    if (confirmText && !await confirmDialog({ title: t("users_title"), body: confirmText, confirm: t("confirm") })) return;
    try {
      const { data } = await api(path, { method: body === undefined ? "POST" : "PATCH", body });
      if (data?.url) replace(outcome, linkBox(data)); else replace(outcome);
      await load();
    } catch (problem) {
      replace(outcome, messageBox(problemText(problem), problem.status === 409 ? "warn" : "error"));
    }
  }

  function editRoles(user, cell) {
    const form = h("form", { class: "stack" }, roleChoices(`roles-${user.id}`, user.roles),
      h("div", { class: "row" },
        h("button", { type: "button", onclick: () => load() }, t("cancel")),
        h("button", { type: "submit", class: "primary" }, t("save"))));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(`users/${user.id}`, { roles: chosenRoles(form) });
    });
    replace(cell, form);
  }

  function actions(user) {
    const cell = h("div", { class: "row actions" });
    const me = user.email === session.me()?.subject;
    replace(cell,
      h("button", { type: "button", class: "edit-roles", onclick: () => editRoles(user, cell) }, t("users_change_roles")),
      user.status === "disabled"
        ? h("button", { type: "button", onclick: () => act(`users/${user.id}/enable`) }, t("users_enable"))
        : [
          h("button", { type: "button", class: "reset", onclick: () => act(`users/${user.id}/password-reset`, undefined, t("users_reset_confirm", { email: user.email })) }, t(user.status === "invited" ? "users_new_invitation" : "users_reset")),
          me ? null : h("button", { type: "button", class: "danger", onclick: () => act(`users/${user.id}/disable`, undefined, t("users_disable_confirm", { email: user.email })) }, t("users_disable")),
        ]);
    return cell;
  }

  async function load() {
    await section(listBox, async () => {
      const { items } = await get("users");
      replace(listBox, h("h2", { id: "h-users" }, t("users_title")), table([
        { label: t("signin_email"), cell: (u) => u.email },
        { label: t("users_name"), cell: (u) => u.name },
        { label: t("users_roles"), cell: (u) => u.roles.map((r) => t(`role_${r}`)).join(t("list_separator")) },
        { label: t("users_status"), cell: (u) => [t(`user_status_${u.status}`), u.locked_until ? h("small", { class: "muted" }, ` ${t("users_locked_until", { until: when(u.locked_until) })}`) : null] },
        { label: t("users_last_sign_in"), cell: (u) => when(u.last_signed_in_at) || "—" },
        { label: t("actions"), cell: actions },
      ], items, { caption: t("users_title"), empty: t("users_none") }));
    });
  }

  replace(view, h("h1", {}, t("users_title")), h("p", { class: "muted" }, t("users_help")), outcome,
    h("div", { class: "grid" }, listBox, invite));
  return void load();
}
