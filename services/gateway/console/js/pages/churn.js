// Churn board: this week's risk list per owner, alerts to acknowledge or dismiss
// (polled), and the backtest report as charts (managers run it).
import { api, get } from "../api.js";
import { t } from "../i18n.js";
import { session } from "../session.js";
import { chart, dateInput, h, levelBadge, money, notice, percent, problemText, promptDialog, replace, section, table, when } from "../ui.js";
import { customerLink, nameCustomers } from "../names.js";
import { reasonText } from "../reasons.js";

const POLL_MS = 15000;
const RANKING_SHOWN = 20;

function riskRows(owner) {
  return [
    ...owner.new.map((r) => ({ ...r, change: "new" })),
    ...owner.rising.map((r) => ({ ...r, change: "rising" })),
    ...owner.still_open.map((r) => ({ ...r, change: "still_open" })),
  ];
}

export function render(view) {
  const rankingBox = h("section", { class: "card", "aria-labelledby": "h-ranking", id: "ranking" });
  const weeklyBox = h("section", { class: "card", "aria-labelledby": "h-weekly" });
  const alertsBox = h("section", { class: "card", "aria-labelledby": "h-alerts" });
  const backtestBox = h("section", { class: "card", "aria-labelledby": "h-backtest" });
  const mayRespond = session.may("customers:write");
  let timer = null;

  // The list's order: revenue at risk by default (where a call saves the most).
  let sort = "revenue_at_risk";

  function sortChoice() {
    const select = h("select", { id: "weekly-sort", onchange: () => { sort = select.value; loadWeekly(); } },
      h("option", { value: "revenue_at_risk" }, t("by_revenue_at_risk")),
      h("option", { value: "score" }, t("by_score")));
    select.value = sort;
    return h("div", { class: "row" }, h("label", { for: "weekly-sort" }, t("sort_by")), select);
  }

  async function loadWeekly() {
    await section(weeklyBox, async () => {
      const weekly = await get("churn/weekly", { sort });
      await nameCustomers(weekly.owners.flatMap((o) => riskRows(o).map((r) => r.customer_id)));
      replace(weeklyBox, h("h2", { id: "h-weekly" }, `${t("weekly_list")} · ${weekly.week}`), sortChoice(),
        weekly.owners.length ? weekly.owners.map((owner) => [h("h3", {}, owner.owner_id || "—"), table([
          { label: t("customer"), cell: (r) => customerLink(r.customer_id) },
          { label: t("revenue_at_risk"), cell: (r) => money(r.revenue_at_risk) },
          { label: t("no_purchase_probability"), cell: (r) => percent(r.no_purchase_probability) },
          { label: t("score"), cell: (r) => r.score },
          { label: t("level"), cell: (r) => levelBadge(r.level) },
          { label: t("status"), cell: (r) => t(`risk_change_${r.change}`) },
          { label: t("risk_reasons"), cell: (r) => r.reasons.map(reasonText).join(t("sentence_separator")) },
        ], riskRows(owner))]) : h("p", { class: "muted" }, t("weekly_empty")));
    });
  }

  async function respond(alert, action) {
    let body;
    if (action === "dismiss") {
      const values = await promptDialog({ title: t("dismiss"), confirm: t("dismiss"), fields: [{ name: "reason", label: t("reason"), required: true, multiline: true }] });
      if (!values?.reason) return;
      body = { reason: values.reason };
    }
    try {
      await api(`churn/alerts/${alert.alert_id}/${action}`, { method: "POST", body });
      notice(action === "dismiss" ? t("dismissed") : t("acknowledged"));
    } catch (problem) {
      notice(problemText(problem), "error");
    }
    loadAlerts();
  }

  async function loadAlerts() {
    await section(alertsBox, async () => {
      const alerts = await get("churn/alerts", { limit: 100 });
      await nameCustomers(alerts.items.map((a) => a.customer_id));
      replace(alertsBox, h("h2", { id: "h-alerts" }, t("alerts")), table([
        { label: t("customer"), cell: (a) => customerLink(a.customer_id) },
        { label: t("level"), cell: (a) => levelBadge(a.level, ` ${a.score}`) },
        { label: t("status"), cell: (a) => a.status },
        { label: t("registered"), cell: (a) => when(a.opened_at) },
        { label: "", cell: (a) => (mayRespond && a.status === "open" ? h("div", { class: "row" },
          h("button", { type: "button", onclick: () => respond(a, "acknowledge") }, t("acknowledge")),
          h("button", { type: "button", onclick: () => respond(a, "dismiss") }, t("dismiss"))) : "") },
      ], alerts.items));
    });
  }

  function backtestForm() {
    const cutoff = dateInput({ id: "bt-cutoff", required: true, value: new Date(Date.now() - 120 * 86400000).toISOString().slice(0, 10) });
    const horizon = h("input", { id: "bt-horizon", type: "number", min: 1, max: 3650, value: 90, required: true });
    const result = h("div", { "aria-live": "polite" });
    const form = h("form", { class: "stack" },
      h("div", { class: "row" },
        h("div", {}, h("label", { for: "bt-cutoff" }, t("backtest_cutoff")), cutoff),
        h("div", {}, h("label", { for: "bt-horizon" }, t("backtest_horizon_days")), horizon),
        h("button", { type: "submit", class: "primary" }, t("run_backtest"))),
      result);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const { data } = await api("churn/backtests", { method: "POST", body: { cutoff: `${cutoff.value}T00:00:00Z`, horizon_days: Number(horizon.value) } });
        const deciles = data.ours.lift_by_decile.map((_, i) => `${i + 1}`);
        replace(result,
          h("p", {}, `${data.customers} · ${data.churned} · ROC AUC ${data.ours.roc_auc ?? "—"} / ${data.days_since_last_order.roc_auc ?? "—"}`),
          chart({
            type: "bar",
            data: {
              labels: deciles,
              datasets: [
                { label: t("churn_title"), data: data.ours.lift_by_decile, backgroundColor: "#1f5fbf" },
                { label: "days since last order", data: data.days_since_last_order.lift_by_decile, backgroundColor: "#8a94a6" },
              ],
            },
          }, t("lift_by_decile")),
          table([
            { label: t("decile"), cell: (i) => i + 1 },
            { label: t("lift"), cell: (i) => data.ours.lift_by_decile[i] },
            { label: "days since last order", cell: (i) => data.days_since_last_order.lift_by_decile[i] },
          ], deciles.map((_, i) => i), { caption: t("lift_by_decile") }));
      } catch (problem) {
        replace(result, h("div", { class: "message error", role: "alert" }, problemText(problem),
          problem.errors.length ? ` ${problem.errors.map((e) => e.reason).join("; ")}` : ""));
      }
    });
    return form;
  }

  async function poll() {
    await loadAlerts();
    timer = setTimeout(poll, POLL_MS);
  }

  replace(backtestBox, h("h2", { id: "h-backtest" }, `${t("backtest")}: ${t("lift_by_decile")}`),
    session.may("churn:configure") ? backtestForm() : h("p", { class: "muted" }, t("read_only")));
  // The whole ranking's top, kept as events arrive: who to call first, at every level.
  async function loadRanking() {
    await section(rankingBox, async () => {
      const page = await get("churn/risks", { sort: "revenue_at_risk", limit: RANKING_SHOWN });
      await nameCustomers(page.items.map((r) => r.customer_id));
      replace(rankingBox, h("h2", { id: "h-ranking" }, t("ranking_title")),
        h("p", { class: "muted small" }, t("ranking_help")),
        table([
          { label: t("customer"), cell: (r) => customerLink(r.customer_id) },
          { label: t("revenue_at_risk"), cell: (r) => (r.revenue_at_risk === null ? "—" : money(r.revenue_at_risk)) },
          { label: t("no_purchase_probability"), cell: (r) => (r.no_purchase_probability === null ? "—" : percent(r.no_purchase_probability)) },
          { label: t("score"), cell: (r) => r.score },
          { label: t("level"), cell: (r) => levelBadge(r.level) },
          { label: t("risk_reasons"), cell: (r) => r.reasons.map(reasonText).join(t("sentence_separator")) || "—" },
        ], page.items, { caption: t("ranking_title"), empty: t("ranking_empty") }));
    });
  }

  replace(view, h("h1", {}, t("churn_title")), h("div", { class: "stack" }, rankingBox, weeklyBox, alertsBox, backtestBox));
  loadRanking();
  loadWeekly();
  loadAlerts().then(() => { timer = setTimeout(poll, POLL_MS); });
  return () => clearTimeout(timer);
}
