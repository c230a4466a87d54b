// Customers: search as you type (name, pinyin, email, phone), filters, a paged list,
// and the create form for those who may write.
import { get } from "../api.js";
import { t } from "../i18n.js";
import { session } from "../session.js";
import { day, h, messageBox, phone, problemText, replace, table } from "../ui.js";
import { customerForm } from "./customer_form.js";
import { importPanel } from "./customer_import.js";

const PAGE = 25;

export function render(view) {
  let controller = null;
  let cursor = null;
  let shown = [];
  const q = h("input", { id: "search", type: "search", placeholder: t("search_placeholder"), autocomplete: "off" });
  const kind = h("select", { id: "filter-kind" },
    h("option", { value: "" }, t("kind_any")), h("option", { value: "person" }, t("kind_person")),
    h("option", { value: "company" }, t("kind_company")));
  const tag = h("input", { id: "filter-tag", autocomplete: "off" });
  const owner = h("input", { id: "filter-owner", autocomplete: "off" });
  const results = h("div", { id: "results", "aria-live": "polite", "aria-busy": "false" });
  const more = h("button", { type: "button", hidden: true }, t("load_more"));
  const panel = h("div");
  const count = h("p", { class: "muted small" });

  const columns = [
    { label: t("name"), cell: (c) => h("a", { href: `#/customers/${encodeURIComponent(c.id)}` }, c.name || c.id) },
    { label: t("kind"), cell: (c) => t(`kind_${c.kind}`) },
    { label: t("email"), cell: (c) => c.email || "" },
    { label: t("phone"), cell: (c) => phone(c.phone, c.phone_international) },
    { label: t("tags"), cell: (c) => (c.tags || []).map((x) => h("span", { class: "tag" }, x)) },
    { label: t("owner"), cell: (c) => c.owner_id || "" },
    { label: t("registered"), cell: (c) => day(c.registered_at) },
  ];

  async function load(append = false) {
    controller?.abort();
    controller = new AbortController();
    results.setAttribute("aria-busy", "true");
    try {
      const page = await get("customers", {
        q: q.value.trim(), kind: kind.value, tag: tag.value.trim().toLowerCase(), owner: owner.value.trim(),
        limit: PAGE, cursor: append ? cursor : undefined,
      }, { signal: controller.signal });
      shown = append ? shown.concat(page.items) : page.items;
      cursor = page.next_cursor;
      replace(results, table(columns, shown, { caption: t("customers_title") }));
      count.textContent = t("results", { count: shown.length + (cursor ? "+" : "") });
      more.hidden = !cursor;
    } catch (problem) {
      if (problem.name === "AbortError") return;
      replace(results, messageBox(problemText(problem), problem.status === 403 ? "warn" : "error"));
    } finally {
      results.setAttribute("aria-busy", "false");
    }
  }

  let typing = null;
  const soon = () => { clearTimeout(typing); typing = setTimeout(() => load(), 250); };
  for (const input of [q, tag, owner]) input.addEventListener("input", soon);
  kind.addEventListener("change", () => load());
  more.addEventListener("click", () => load(true));

  const actions = h("div", { class: "row" });
  if (session.may("customers:write")) {
    actions.append(h("button", { type: "button", class: "primary", id: "new-customer", onclick: () => {
      replace(panel, customerForm({
        onDone: (id) => { location.hash = `#/customers/${encodeURIComponent(id)}`; },
        onCancel: () => replace(panel),
      }));
      panel.querySelector("input")?.focus();
    } }, t("new_customer")));
  }
  if (session.may("customers:import")) {
    actions.append(h("button", { type: "button", id: "import-customers", onclick: () => replace(panel, importPanel(() => replace(panel))) }, t("import_csv")));
  }

  replace(view,
    h("div", { class: "row spread" }, h("h1", {}, t("customers_title")), actions),
    panel,
    h("div", { class: "card filters", role: "search" },
      h("div", {}, h("label", { for: "search" }, t("search")), q),
      h("div", {}, h("label", { for: "filter-kind" }, t("kind")), kind),
      h("div", {}, h("label", { for: "filter-tag" }, t("tag")), tag),
      h("div", {}, h("label", { for: "filter-owner" }, t("owner")), owner)),
    count, results, more);
  load();
  q.focus();
  return () => { controller?.abort(); clearTimeout(typing); };
}
