// A customer chosen by searching (name, pinyin, e-mail, phone), never by typing an id:
// results show as a list of buttons under the box, each naming the customer.
import { get } from "./api.js";
import { t } from "./i18n.js";
import { h, replace } from "./ui.js";

const SHOWN = 8;

function describe(customer) {
  return [customer.email, customer.phone].filter(Boolean).join(" · ");
}

// The picker's element; onPick(customer) when one is chosen. `except` leaves one out.
export function customerPicker({ id, label, onPick, except = null }) {
  const input = h("input", { id, type: "search", autocomplete: "off", placeholder: t("search_placeholder"), "aria-describedby": `${id}-hint` });
  const results = h("ul", { class: "picker-results", id: `${id}-results`, "aria-live": "polite" });
  let controller = null;
  let typing = null;

  async function search() {
    const q = input.value.trim();
    controller?.abort();
    if (!q) { replace(results); return; }
    controller = new AbortController();
    try {
      const page = await get("customers", { q, limit: SHOWN + 1 }, { signal: controller.signal });
      const found = page.items.filter((c) => c.id !== except).slice(0, SHOWN);
      replace(results, found.length
        ? found.map((c) => h("li", {}, h("button", { type: "button", class: "picker-choice", "data-customer": c.id, onclick: () => { input.value = c.name; replace(results); onPick(c); } },
          h("strong", {}, c.name), describe(c) ? h("span", { class: "muted small" }, ` ${describe(c)}`) : null)))
        : h("li", { class: "muted" }, t("picker_none")));
    } catch (problem) {
      if (problem.name !== "AbortError") replace(results, h("li", { class: "muted" }, t("error_network")));
    }
  }
  input.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(search, 250); });
  return h("div", { class: "field picker" },
    h("label", { for: id }, label), input,
    h("small", { class: "muted", id: `${id}-hint` }, t("picker_hint")),
    results);
}
