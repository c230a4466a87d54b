// Analytics: every figure of the analytics service (retention cohorts, repurchase, order
// frequency, order value, CLV, predicted CLV, churn rate, NPS, CSAT, activity) and the
// pipeline's funnel, for a window, a segment and a grain; each with the customers behind
// it (a page, by name, linked to their 360 view) and its CSV export. The figure and the
// window live in the address (#/analytics?figure=...&from=...), so a view can be shared.
import { get } from "../api.js";
import { t, tOr } from "../i18n.js";
import { session } from "../session.js";
import { chart, dateInput, h, messageBox, money, number, percent, problemText, replace, section, stageName, table, when } from "../ui.js";

const FIGURES = ["retention", "repurchase-rate", "order-frequency", "average-order-value", "clv",
  "predicted-clv", "churn-rate", "nps", "csat", "activity", "funnel"];
const GRAINED = new Set(["retention", "nps", "csat"]);
const BROKEN_DOWN = new Set(["nps", "csat"]);
// How each headline number reads: a share, money (minor units), or a plain number.
const SHARES = new Set(["repurchase-rate", "churn_rate", "csat", "win_rate", "conversion_to_next"]);
const MONEY = new Set(["average-order-value", "clv", "predicted-clv", "net_revenue", "revenue_lost", "value"]);
const DRILL_PAGE = 20;

function isoDay(date) { return date.toISOString().slice(0, 10); }

function columnName(key) {
  const match = /^(\w+?)_(\d+)$/.exec(key);
  return match && match[1] === "period" ? t("analytics_col_period_n", { n: match[2] }) : t(`analytics_col_${key}`);
}

function cellText(figure, key, value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return t(value ? "yes" : "no");
  if (key === "group") return t(`nps_group_${value}`);
  if (key === "outcome") return t(`outcome_${value}`);
  if (key === "stage") return stageName(value);
  if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value)) return when(value);
  if (Array.isArray(value)) return value.map((v) => (key === "retention" ? percent(v) : number(v))).join(" · ");
  if (typeof value === "object") return Object.entries(value).map(([c, v]) => money(v, c)).join(" · ");
  if (typeof value !== "number") return String(value);
  if (SHARES.has(key) || (key === "value" && SHARES.has(figure))) return percent(value);
  if (MONEY.has(key) && key !== "value") return money(value, "CNY");
  return number(value);
}

function headline(figure, summary) {
  const value = summary.value ?? summary.nps ?? summary.csat ?? summary.lost ?? summary.per_customer ?? summary.customers;
  if (value === undefined || value === null) return "—";
  if (SHARES.has(figure) || summary.csat !== undefined) return percent(value);
  if (MONEY.has(figure)) return money(value, "CNY");
  return number(value);
}

// The table's numeric series drawn as bars (per month, per period, per owner, per stage).
function barsOf(figure, rows) {
  if (!rows.length) return null;
  const series = { "churn-rate": "churn_rate", nps: "nps", csat: "csat", funnel: "deals" }[figure];
  if (!series) return null;
  const labelKey = Object.keys(rows[0]).find((k) => typeof rows[0][k] === "string");
  return chart({
    type: "bar",
    data: { labels: rows.map((r) => r[labelKey]), datasets: [{ label: columnName(series), data: rows.map((r) => r[series]), backgroundColor: "#1f5fbf" }] },
    options: { plugins: { legend: { display: false } } },
  }, t(`figure_${figure}`));
}

async function download(path, query, name) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query)) if (v) url.searchParams.set(k, v);
  const response = await fetch(url, { headers: { Authorization: `Bearer ${session.token()}` } });
  if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status, body: {}, errors: [] });
  const link = h("a", { href: URL.createObjectURL(await response.blob()), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}

export function render(view) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const now = new Date();
  const yearAgo = new Date(now.getTime() - 365 * 86400000);
  const state = {
    figure: FIGURES.includes(params.get("figure")) ? params.get("figure") : "retention",
    from: params.get("from") || isoDay(yearAgo),
    to: params.get("to") || isoDay(now),
    segment: params.get("segment") || "",
    grain: params.get("grain") || "month",
    by: params.get("by") || "period",
  };
  const figureBox = h("section", { class: "card wide", "aria-labelledby": "h-figure", id: "figure" });
  const customersBox = h("section", { class: "card wide", "aria-labelledby": "h-behind", id: "behind" });

  const select = (id, label, options, value) => h("div", { class: "field" }, h("label", { for: id }, label),
    h("select", { id, name: id }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text))));
  const segments = select("segment", t("analytics_segment"), [["", t("analytics_everyone")]], state.segment);
  const form = h("form", { class: "card row filters", id: "analytics-filters" },
    select("figure", t("analytics_figure"), FIGURES.map((f) => [f, t(`figure_${f}`)]), state.figure),
    h("div", { class: "field" }, h("label", { for: "from" }, t("analytics_from")), dateInput({ id: "from", name: "from", value: state.from, required: true })),
    h("div", { class: "field" }, h("label", { for: "to" }, t("analytics_to")), dateInput({ id: "to", name: "to", value: state.to, required: true })),
    segments,
    GRAINED.has(state.figure) ? select("grain", t("analytics_grain"), [["month", t("grain_month")], ["week", t("grain_week")]], state.grain) : null,
    BROKEN_DOWN.has(state.figure) ? select("by", t("analytics_by"), ["period", "owner", "category"].map((b) => [b, t(`by_${b}`)]), state.by) : null,
    h("button", { type: "submit", class: "primary" }, t("analytics_show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = Object.fromEntries(new FormData(form));
    location.hash = `#/analytics?${new URLSearchParams(Object.entries(chosen).filter(([, v]) => v))}`;
  });
  form.addEventListener("change", (event) => { if (event.target.id === "figure") form.requestSubmit(); });

  const windowQuery = () => ({
    from: new Date(`${state.from}T00:00:00Z`).toISOString(),
    to: new Date(new Date(`${state.to}T00:00:00Z`).getTime() + 86400000).toISOString(),
    segment: state.segment || undefined,
    grain: GRAINED.has(state.figure) ? state.grain : undefined,
    by: BROKEN_DOWN.has(state.figure) ? state.by : undefined,
  });

  async function names(ids) {
    const found = await Promise.all(ids.map((id) => get(`customers/${id}`).then((c) => [id, c.name]).catch(() => [id, null])));
    return Object.fromEntries(found);
  }

  async function showCustomers(path) {
    await section(customersBox, async () => {
      const page = await get(path.replace(/^\/api\/v1\//, ""), { limit: DRILL_PAGE });
      const who = await names(page.items.map((r) => r.customer_id));
      const keys = Object.keys(page.items[0] || {}).filter((k) => k !== "customer_id");
      replace(customersBox, h("h2", { id: "h-behind" }, t("analytics_behind")),
        table([
          { label: t("customer"), cell: (r) => h("a", { href: `#/customers/${encodeURIComponent(r.customer_id)}` }, who[r.customer_id] || t("unnamed_customer")) },
          ...keys.map((k) => ({ label: columnName(k), cell: (r) => cellText(state.figure, k, r[k]) })),
        ], page.items, { caption: t("analytics_behind"), empty: t("analytics_nobody") }),
        page.next_cursor ? h("p", { class: "muted small" }, t("analytics_more_in_export")) : null);
    });
  }

  // A cell that opens the customers behind it: a cohort's k-th period, a month's losses.
  function drillable(path, key, row) {
    const open = (extra, text, label) => h("button", {
      type: "button", class: "link-button drill", title: label,
      onclick: () => showCustomers(`${path}&${new URLSearchParams(extra)}`),
    }, text);
    if (state.figure === "retention" && key === "retention") {
      return row.retention.map((share, k) => [k ? " · " : "", open({ cohort: row.cohort_start, period: k }, percent(share), t("analytics_drill_cohort", { cohort: row.cohort, k }))]);
    }
    if (state.figure === "churn-rate" && key === "lost" && row.lost) {
      return open({ month: row.month }, number(row.lost), t("analytics_drill_month", { month: row.month }));
    }
    return null;
  }

  async function showFigure() {
    await section(figureBox, async () => {
      const isFunnel = state.figure === "funnel";
      const query = windowQuery();
      const answer = isFunnel ? await get("funnel", { from: query.from, to: query.to }) : await get(`analytics/${state.figure}`, query);
      const rows = isFunnel ? answer.stages : answer.table;
      const keys = Object.keys(rows[0] || {}).filter((k) => k !== "cohort_start");
      const exporter = session.may("analytics:export") && !isFunnel
        ? h("div", { class: "row" },
          h("button", { type: "button", id: "export-table", onclick: () => download(`/api/v1/analytics/${state.figure}/export`, { ...query, part: "table" }, `${state.figure}.csv`).catch((p) => replace(figureBox.querySelector(".export-result"), messageBox(problemText(p)))) }, t("analytics_export_table")),
          h("button", { type: "button", id: "export-customers", onclick: () => download(`/api/v1/analytics/${state.figure}/export`, { ...query, part: "customers" }, `${state.figure}-customers.csv`).catch((p) => replace(figureBox.querySelector(".export-result"), messageBox(problemText(p)))) }, t("analytics_export_customers")),
          h("div", { class: "export-result" }))
        : null;
      replace(figureBox,
        h("h2", { id: "h-figure" }, t(`figure_${state.figure}`)),
        h("p", { class: "headline", id: "headline" }, (isFunnel ? percent(answer.win_rate) : headline(state.figure, answer)) || "—"),
        h("p", { class: "muted" }, t(`method_${state.figure}`)),
        rows.length ? barsOf(state.figure, rows) : null,
        table(keys.map((k) => ({ label: columnName(k), cell: (r) => drillable(answer.drill_down, k, r) ?? cellText(state.figure, k, r[k]) })), rows,
          { caption: t(`figure_${state.figure}`), empty: t(isFunnel ? "analytics_no_deals" : "analytics_no_rows") }),
        exporter);
      if (isFunnel) replace(customersBox);
      else await showCustomers(answer.drill_down);
    });
  }

  replace(view, h("h1", {}, t("analytics_title")), form, h("div", { class: "grid" }, figureBox, customersBox));
  section(segments, async () => {
    const { items } = await get("analytics/segments");
    segments.querySelector("select").append(...items.map((s) => h("option", { value: s.name, selected: s.name === state.segment }, s.built_in ? tOr(`segment_${s.name}`, s.name) : s.name)));
  });
  return void showFigure();
}
