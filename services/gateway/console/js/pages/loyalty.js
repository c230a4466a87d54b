// Loyalty: a member's balance, tier progress and ledger; the programme's statistics.
import { get } from "../api.js";
import { t } from "../i18n.js";
import { customerPicker } from "../picker.js";
import { chart, h, money, number, replace, section, table, when } from "../ui.js";

const EARNED_FOR = new Set(["order", "check_in", "streak", "birthday", "survey", "referral"]);

// What a ledger line was for, in the reader's language: its kind (from the event type),
// what earned it, and a person's own words where they gave a reason (an adjustment).
function ledgerReason(line) {
  const kind = /^crm\.loyalty\.(\w+)\.v\d+$/.exec(line.type)?.[1];
  const given = line.detail?.reason;
  if (kind === "points_earned") return EARNED_FOR.has(given) ? t(`earned_for_${given}`) : t("ledger_points_earned");
  const text = kind ? t(`ledger_${kind}`) : line.type;
  return kind === "points_adjusted" || kind === "redemption_cancelled" ? [text, given ? `: ${given}` : ""].join("") : text;
}

export function render(view, [customerId]) {
  const memberBox = h("section", { class: "card", "aria-labelledby": "h-member" });
  const statsBox = h("section", { class: "card", "aria-labelledby": "h-stats" });
  const form = h("div", { role: "search" }, customerPicker({
    id: "member-search",
    label: t("find_member"),
    onPick: (customer) => { location.hash = `#/loyalty/${encodeURIComponent(customer.id)}`; },
  }));

  async function loadMember(id) {
    await section(memberBox, async () => {
      const path = `customers/${encodeURIComponent(id)}/loyalty`;
      const [account, ledger, customer] = await Promise.all([get(path), get(`${path}/ledger`), get(`customers/${encodeURIComponent(id)}`).catch(() => null)]);
      const next = account.next_tier;
      const progress = next ? h("div", {},
        h("label", { for: "tier-progress" }, `${t("next_tier")}: ${next.name} (${money(next.spend_needed)})`),
        h("progress", { id: "tier-progress", class: "progress", max: next.threshold, value: account.qualifying_spend })) : null;
      replace(memberBox,
        h("h2", { id: "h-member" }, t("member"), ": ", h("a", { href: `#/customers/${encodeURIComponent(id)}` }, customer?.name || id)),
        h("dl", { class: "facts" },
          h("dt", {}, t("balance")), h("dd", { id: "balance" }, number(account.balance)),
          h("dt", {}, t("tier")), h("dd", {}, account.tier || "—")),
        progress,
        h("h3", {}, t("ledger")),
        table([
          { label: t("at_time"), cell: (line) => when(line.at) },
          { label: t("points"), cell: (line) => (line.points > 0 ? `+${line.points}` : String(line.points)) },
          { label: t("balance"), cell: (line) => number(line.balance_after) },
          { label: t("reason"), cell: ledgerReason },
        ], ledger.lines));
    });
  }

  async function loadStats() {
    await section(statsBox, async () => {
      const s = await get("loyalty/statistics");
      replace(statsBox, h("h2", { id: "h-stats" }, t("programme_stats")),
        h("dl", { class: "facts" },
          Object.entries(s.members_per_tier).map(([tier, count]) => [h("dt", {}, tier), h("dd", {}, number(count))]),
          h("dt", {}, t("balance")), h("dd", {}, number(s.outstanding_points))),
        chart({
          type: "bar",
          data: {
            labels: s.months.map((m) => m.month),
            datasets: [
              { label: t("points_issued"), data: s.months.map((m) => m.issued), backgroundColor: "#1f5fbf" },
              { label: t("points_redeemed"), data: s.months.map((m) => m.redeemed), backgroundColor: "#1b6e3a" },
              { label: t("points_expired"), data: s.months.map((m) => m.expired), backgroundColor: "#b3261e" },
            ],
          },
        }, t("programme_stats")),
        table([
          { label: t("analytics_col_month"), cell: (m) => m.month }, { label: t("points_issued"), cell: (m) => number(m.issued) },
          { label: t("points_redeemed"), cell: (m) => number(m.redeemed) }, { label: t("points_expired"), cell: (m) => number(m.expired) },
        ], s.months));
    });
  }

  replace(view, h("h1", {}, t("loyalty_title")), h("div", { class: "card" }, form),
    h("div", { class: "grid" }, customerId ? memberBox : null, statsBox));
  if (customerId) loadMember(customerId);
  loadStats();
}
