// The customer form: register (POST) or change (PATCH with If-Match), a 422's field
// errors beside their inputs, a duplicate (409) named with a link to the one we have.
import { api } from "../api.js";
import { t } from "../i18n.js";
import { dateInput, h, messageBox, notice, problemText, replace, showFieldErrors } from "../ui.js";

function field(name, label, input, hint) {
  input.id = `customer-${name}`;
  input.name = name;
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input,
    hint ? h("div", { class: "muted small" }, hint) : null);
}

// existing: the customer's profile (edit) or null (create); onDone(id) after a write.
export function customerForm({ existing = null, version = null, onDone, onCancel }) {
  const general = h("div", { "aria-live": "polite" });
  const value = (name) => (existing && existing[name]) || "";
  const kind = h("select", {}, h("option", { value: "person" }, t("kind_person")), h("option", { value: "company" }, t("kind_company")));
  kind.value = value("kind") || "person";
  const form = h("form", { class: "card", novalidate: true },
    h("h2", {}, existing ? t("edit_customer") : t("new_customer")),
    h("div", { class: "grid" },
      existing ? null : field("kind", t("kind"), kind),
      field("name", t("name"), h("input", { value: value("name"), required: true, autocomplete: "off" })),
      field("email", t("email"), h("input", { type: "email", value: value("email"), autocomplete: "off" })),
      field("phone", t("phone"), h("input", { type: "tel", value: value("phone"), autocomplete: "off" })),
      field("birthday", t("birthday"), dateInput({ value: value("birthday") })),
      existing ? null : field("tags", t("tags"), h("input", { autocomplete: "off" }), t("tags_hint")),
      existing ? null : field("owner_id", t("owner"), h("input", { autocomplete: "off" }))),
    general,
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary" }, existing ? t("save") : t("create")),
      h("button", { type: "button", onclick: () => onCancel?.() }, t("cancel"))));

  function body() {
    const data = {};
    for (const name of ["name", "email", "phone", "birthday", "owner_id"]) {
      const input = form.elements.namedItem(name);
      if (!input) continue;
      const text = input.value.trim();
      if (existing) {
        // A merge patch: only what changed; a cleared field is removed (null).
        if (text !== (existing[name] || "")) data[name] = text || null;
      } else if (text) {
        data[name] = text;
      }
    }
    if (!existing) {
      data.kind = kind.value;
      data.name = data.name ?? "";
      const tags = form.elements.namedItem("tags").value.split(/[,，]/).map((s) => s.trim()).filter(Boolean);
      if (tags.length) data.tags = tags;
    }
    return data;
  }

  async function submit(registerAnyway = false) {
    showFieldErrors(form, [], general);
    const data = body();
    if (registerAnyway) data.register_anyway = true;
    try {
      const { data: written } = existing
        ? await api(`customers/${encodeURIComponent(existing.id)}`, { method: "PATCH", body: data, ifMatch: version })
        : await api("customers", { method: "POST", body: data });
      notice(existing ? t("customer_saved") : t("customer_created"));
      onDone?.(written.id, written.version);
    } catch (problem) {
      if (problem.status === 422) {
        showFieldErrors(form, problem.errors, general);
      } else if (problem.status === 409 && problem.body.existing_id) {
        replace(general, h("div", { class: "message warn", role: "alert" },
          `${t("duplicate_found")} ${problem.message} `,
          h("a", { href: `#/customers/${encodeURIComponent(problem.body.existing_id)}` }, t("open_existing")),
          " ",
          h("button", { type: "button", onclick: () => submit(true) }, t("register_anyway"))));
      } else {
        replace(general, messageBox(problemText(problem)));
      }
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
  return form;
}
