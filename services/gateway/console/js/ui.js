// DOM building without innerHTML (every value is text, so nothing a customer typed can
// run as markup), and the few widgets every page shares.
import { t, tOr, lang } from "./i18n.js";

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

// A page-wide message (role="status", read out by screen readers).
export function notice(text, kind = "info") {
  const box = document.getElementById("notice");
  box.className = `notice ${kind}`;
  box.textContent = text || "";
}

// What a failed request means to a user; a 403 is a message, never a broken page.
export function problemText(problem) {
  if (!problem || problem.status === undefined) return t("error_network");
  if (problem.status === 403) return `${t("error_forbidden")} (${problem.message})`;
  if (problem.status === 404) return t("error_not_found");
  if (problem.status === 409) return `${t("error_conflict")} ${problem.message}`;
  if (problem.status === 412) return t("error_stale");
  if (problem.status === 429) return t("error_rate_limited");
  if (problem.status >= 500) return `${t("error_server")} (${problem.body.request_id || problem.status})`;
  return problem.message;
}

export function messageBox(text, kind = "error") {
  return h("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// A section that fails on its own: a missing service or a 403 leaves the rest of the page.
export async function section(container, load) {
  try {
    await load();
  } catch (problem) {
    if (problem?.name === "AbortError") return;
    replace(container, messageBox(problemText(problem), problem?.status === 403 ? "warn" : "error"));
  }
}

export function confirmDialog({ title, body, confirm, danger = false, typed = null }) {
  const dialog = document.getElementById("dialog");
  return new Promise((resolve) => {
    const input = typed
      ? h("input", { id: "confirm-typed", autocomplete: "off" })
      : null;
    const ok = h("button", { type: "submit", class: `primary ${danger ? "danger" : ""}`, value: "ok" }, confirm);
    if (typed) {
      ok.disabled = true;
      input.addEventListener("input", () => { ok.disabled = input.value.trim() !== typed; });
    }
    replace(dialog, h("form", { method: "dialog" },
      h("h2", { id: "dialog-title" }, title),
      h("p", {}, body),
      typed ? h("div", { class: "field" }, h("label", { for: "confirm-typed" }, t("type_to_confirm", { text: typed })), input) : null,
      h("div", { class: "row" },
        h("button", { type: "submit", value: "cancel" }, t("cancel")), ok)));
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    (input || ok).focus();
  });
}

// A form in the shared dialog; resolves with the values, or null when cancelled.
export function promptDialog({ title, fields, confirm }) {
  const dialog = document.getElementById("dialog");
  return new Promise((resolve) => {
    const inputs = fields.map((field) => h(field.multiline ? "textarea" : "input", {
      id: `prompt-${field.name}`, name: field.name, required: field.required, type: field.type || "text",
    }));
    replace(dialog, h("form", { method: "dialog" },
      h("h2", { id: "dialog-title" }, title),
      fields.map((field, i) => h("div", { class: "field" },
        h("label", { for: `prompt-${field.name}` }, field.label), inputs[i])),
      h("div", { class: "row" },
        h("button", { type: "submit", value: "cancel", formnovalidate: true }, t("cancel")),
        h("button", { type: "submit", class: "primary", value: "ok" }, confirm))));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok"
        ? Object.fromEntries(fields.map((field, i) => [field.name, inputs[i].value.trim()]))
        : null);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    inputs[0]?.focus();
  });
}

// Shows each {field, reason} of a 422 beside its input; the rest in `general`.
export function showFieldErrors(form, errors, general) {
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
  const unplaced = [];
  for (const { field, reason } of errors) {
    const name = String(field || "").replace(/^body\./, "").split(".")[0];
    const input = name && form.elements.namedItem(name);
    if (!input || !(input instanceof HTMLElement)) { unplaced.push(`${field}: ${reason}`); continue; }
    const id = `${input.id || name}-error`;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    input.closest(".field")?.append(h("div", { class: "field-error", id }, reason));
  }
  if (general) replace(general, unplaced.length ? messageBox(unplaced.join("; ")) : null);
  form.querySelector('[aria-invalid="true"]')?.focus();
}

const locale = () => (lang() === "zh" ? "zh-CN" : "en-GB");
export function when(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString(locale(), { dateStyle: "medium", timeStyle: "short" });
}
export function day(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleDateString(locale(), { dateStyle: "medium" });
}
export function money(minor, currency) {
  if (minor === undefined || minor === null) return "";
  const digits = new Intl.NumberFormat("en", { style: "currency", currency: currency || "CNY" }).resolvedOptions().maximumFractionDigits;
  return new Intl.NumberFormat(locale(), { style: "currency", currency: currency || "CNY" }).format(minor / 10 ** digits);
}
// A phone as people write it: the services send the stored E.164 form and, beside it, the
// same number grouped by its country's plan (``phone_international``). A Chinese reader
// reads a Chinese number without the country code.
export function phone(value, international) {
  if (!value) return "";
  const written = international || value;
  return lang() === "zh" && written.startsWith("+86 ") ? written.slice(4) : written;
}
// A date field (its value is always ISO, YYYY-MM-DD). The browser draws its own date
// control in the browser's language whatever the page's, so a Chinese reader could get
// mm/dd/yyyy: Chinese readers get a text field taking dates as China writes them in
// figures (年-月-日, GB/T 7408, the ISO order); others get the browser's date control.
export function dateInput(attrs = {}) {
  if (lang() !== "zh") return h("input", { ...attrs, type: "date" });
  return h("input", {
    ...attrs, type: "text", inputmode: "numeric", autocomplete: "off", maxlength: 10,
    pattern: "\\d{4}-\\d{2}-\\d{2}", placeholder: t("date_placeholder"), title: t("date_placeholder"),
  });
}
// A date field's value when it holds a whole date, else "".
export function dateOf(input) {
  return /^\d{4}-\d{2}-\d{2}$/.test(input.value) && !Number.isNaN(Date.parse(input.value)) ? input.value : "";
}
// A churn risk level as a coloured badge, in the reader's language (``suffix``: the score).
export function levelBadge(level, suffix = "") {
  return h("span", { class: `badge ${level}` }, `${t(`level_${level}`)}${suffix}`);
}
// A deal stage's name: the default stages in the reader's language, a tenant's own as named.
export function stageName(name) {
  return tOr(`stage_${name}`, name);
}

export function percent(share) {
  return share === undefined || share === null ? "" : new Intl.NumberFormat(locale(), { style: "percent" }).format(share);
}
export function number(value) {
  return value === undefined || value === null ? "" : new Intl.NumberFormat(locale()).format(value);
}
export function duration(seconds) {
  const sign = seconds < 0 ? "-" : "";
  let rest = Math.abs(Math.round(seconds));
  const d = Math.floor(rest / 86400); rest %= 86400;
  const hh = String(Math.floor(rest / 3600)).padStart(2, "0"); rest %= 3600;
  const mm = String(Math.floor(rest / 60)).padStart(2, "0");
  const ss = String(rest % 60).padStart(2, "0");
  return `${sign}${d ? `${d}d ` : ""}${hh}:${mm}:${ss}`;
}

export function table(columns, rows, { caption, empty } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty || t("nothing_yet"));
  return h("table", { class: "responsive" },
    caption ? h("caption", { class: "visually-hidden" }, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", { "data-label": c.label }, c.cell(row)))))));
}

// A Chart.js chart (vendored, see vendor/); a text table stays beside it for screen readers.
export function chart(config, label) {
  const canvas = h("canvas", { role: "img", "aria-label": label });
  const box = h("div", { class: "chart-box" }, canvas);
  requestAnimationFrame(() => {
    if (window.Chart) new window.Chart(canvas, { ...config, options: { maintainAspectRatio: false, animation: false, ...(config.options || {}) } });
  });
  return box;
}
