// A 360 timeline line in the reader's language, from the facts the server keeps beside
// its English summary (the event's fields and the names of what it is about). A line
// with no facts (written before the view kept them) or of a type this console does not
// know yet shows the summary: nothing is hidden.
import { t, tOr } from "./i18n.js";
import { customerLink, nameCustomers, nameRewards, rewardName } from "./names.js";
import { day, h, money, number, phone, stageName, when } from "./ui.js";

const CUSTOMER_FACTS = ["referrer_id", "duplicate_id", "survivor_id", "contact_id", "previous_contact_id", "previous_customer_id"];

// Names of the other customers and the rewards the lines mention, asked once each.
export async function nameTimeline(entries) {
  const facts = entries.map((entry) => entry.facts).filter(Boolean);
  await Promise.all([
    nameCustomers(facts.flatMap((f) => CUSTOMER_FACTS.map((key) => f[key]))),
    nameRewards(facts.map((f) => f.reward_id)),
  ]);
}

// ``key``'s text with each {name} replaced by params[name], which may be a node.
function fill(key, params) {
  const markers = Object.fromEntries(Object.keys(params).map((name) => [name, `\u0001${name}\u0001`]));
  return t(key, markers).split("\u0001").map((part, i) => (i % 2 ? params[part] ?? "" : part));
}

// Free text the customer or a colleague wrote, after the headline (gone once erased).
function said(text) {
  return text ? [t("tl_said"), h("q", {}, text)] : [];
}

const points = (n) => number(Math.abs(n));
const named = (name, fallback) => (name ? h("strong", {}, name) : t(fallback));
const order = (f) => named(f.order_number, "tl_an_order");
const ticket = (f) => named(f.ticket_subject ?? f.subject, "tl_a_ticket");
const deal = (f) => named(f.deal_title ?? f.title, "tl_a_deal");
const contract = (f) => named(f.contract_title ?? f.title, "tl_a_contract");
const task = (f) => named(f.task_title ?? f.title, "tl_a_task");
const person = (id) => (id ? customerLink(id) : "—");
const reward = (id) => h("strong", {}, rewardName(id));
const level = (name) => tOr(`level_${name}`, name);
const status = (name) => tOr(`ticket_status_${name}`, name);
const priority = (name) => tOr(`priority_${name}`, name);
const channel = (name) => tOr(`channel_${name}`, name);
const tier = (name) => tOr(`tier_${name}`, name || "—");
const signals = (reasons) => (reasons || []).slice(0, 3).map((r) => tOr(`signal_${r.signal}`, r.signal)).join(t("tl_list_separator"));
const because = (reasons) => ((reasons || []).length ? [t("tl_said"), signals(reasons)] : []);

const PROFILE_FIELDS = ["name", "email", "phone", "birthday", "company_id"];

function profileChanges(f) {
  const parts = [];
  for (const field of PROFILE_FIELDS) {
    if (f[field] === undefined || f[field] === null) continue;
    const value = field === "phone" ? phone(f[field]) : field === "birthday" ? day(f[field]) : f[field];
    parts.push(`${t(`tl_field_${field}`)} ${field === "company_id" ? "" : value}`.trim());
  }
  for (const field of f.cleared || []) parts.push(fill("tl_field_cleared", { field: t(`tl_field_${field}`) }).join(""));
  const attributes = Object.keys(f.attributes || {}).length + (f.attributes_removed || []).length;
  if (attributes) parts.push(fill("tl_fields_attributes", { count: number(attributes) }).join(""));
  // Erased: the values are gone, the fact that something changed is not.
  return parts.length ? parts.join(t("tl_list_separator")) : t("tl_field_some");
}

// One template per event type the 360 view writes a line for (a test holds the two lists
// equal: services/customer360/tests/test_timeline_facts.py).
const LINES = {
  "contacts.customer_registered": (f) => fill("tl_customer_registered", { kind: tOr(`kind_${f.kind}`, f.kind), name: f.name ? h("strong", {}, f.name) : "" }),
  "contacts.profile_changed": (f) => fill("tl_profile_changed", { changes: profileChanges(f) }),
  "contacts.customer_tagged": (f) => fill("tl_customer_tagged", { tag: h("span", { class: "tag" }, f.tag) }),
  "contacts.customer_untagged": (f) => fill("tl_customer_untagged", { tag: h("span", { class: "tag" }, f.tag) }),
  "contacts.owner_changed": (f) => fill("tl_owner_changed", { from: f.from_owner_id || t("tl_nobody"), to: f.to_owner_id || t("tl_nobody") }),
  "contacts.customer_referred": (f) => fill("tl_customer_referred", { referrer: person(f.referrer_id) }),
  "contacts.key_contact_changed": (f) => (f.contact_id
    ? fill("tl_key_contact_changed", { role: f.role, contact: person(f.contact_id) })
    : fill("tl_key_contact_vacated", { role: f.role })),
  "contacts.interaction_logged": (f) => [...fill(`tl_interaction_${f.direction}`, { channel: channel(f.channel), by: f.by }), ...said(f.summary)],
  "contacts.customer_merged": (f) => fill("tl_customer_merged", { duplicate: person(f.duplicate_id) }),
  "contacts.customer_merged_into": (f) => fill("tl_customer_merged_into", { survivor: person(f.survivor_id) }),
  "contacts.consent_changed": (f) => fill(f.granted ? "tl_consent_granted" : "tl_consent_withdrawn", { channel: channel(f.channel), source: f.source }),
  "contacts.personal_data_erased": (f) => fill("tl_personal_data_erased", { by: f.by }),

  "pipeline.deal_opened": (f) => fill("tl_deal_opened", { deal: deal(f), amount: money(f.amount, f.currency), stage: stageName(f.stage) }),
  "pipeline.deal_stage_changed": (f) => fill("tl_deal_stage_changed", { deal: deal(f), from: stageName(f.from_stage), to: stageName(f.to_stage) }),
  "pipeline.quote_attached": (f) => fill("tl_quote_attached", { deal: deal(f), total: money(f.total, f.currency) }),
  "pipeline.deal_won": (f) => fill("tl_deal_won", { deal: deal(f), amount: money(f.amount, f.currency) }),
  "pipeline.deal_lost": (f) => [...fill("tl_deal_lost", { deal: deal(f) }), ...said(f.reason)],
  "pipeline.order_placed": (f) => fill("tl_order_placed", { order: order(f), total: money(f.total, f.currency) }),
  "pipeline.order_refunded": (f) => [...fill("tl_order_refunded", { order: order(f), amount: money(f.amount, f.currency) }), ...said(f.reason)],
  "pipeline.order_cancelled": (f) => [...fill("tl_order_cancelled", { order: order(f) }), ...said(f.reason)],
  "pipeline.contract_signed": (f) => fill("tl_contract_signed", { contract: contract(f), value: money(f.value, f.currency), starts: day(f.starts_on), ends: day(f.ends_on) }),
  "pipeline.contract_renewed": (f) => fill("tl_contract_renewed", { contract: contract(f), ends: day(f.ends_on), value: money(f.value, f.currency) }),
  "pipeline.contract_terminated": (f) => [...fill("tl_contract_terminated", { contract: contract(f), on: day(f.terminated_on) }), ...said(f.reason)],
  "pipeline.task_created": (f) => [...fill("tl_task_created", { assignee: f.assignee_id, due: when(f.due_at) }), ...said(f.title)],
  "pipeline.task_rescheduled": (f) => fill("tl_task_rescheduled", { task: task(f), due: when(f.due_at) }),
  "pipeline.task_completed": (f) => [...fill("tl_task_completed", { task: task(f), by: f.by }), ...said(f.note)],
  "pipeline.lead_converted": (f) => fill(f.linked_existing ? "tl_lead_linked" : "tl_lead_converted", {}),

  "tickets.ticket_opened": (f) => fill(f.category === "complaint" ? "tl_complaint_opened" : "tl_ticket_opened", { ticket: ticket(f), priority: priority(f.priority), channel: channel(f.channel) }),
  "tickets.ticket_assigned": (f) => ((f.assignee_id || f.group)
    ? fill("tl_ticket_assigned", { ticket: ticket(f), to: f.assignee_id || f.group })
    : fill("tl_ticket_unassigned", { ticket: ticket(f) })),
  "tickets.ticket_replied": (f) => [...fill(f.public ? "tl_ticket_replied" : "tl_ticket_noted", { ticket: ticket(f), by: f.by }), ...said(f.body)],
  "tickets.ticket_status_changed": (f) => fill("tl_ticket_status_changed", { ticket: ticket(f), from: status(f.from_status), to: status(f.to_status), by: f.by }),
  "tickets.ticket_priority_changed": (f) => fill("tl_ticket_priority_changed", { ticket: ticket(f), from: priority(f.from_priority), to: priority(f.to_priority) }),
  "tickets.ticket_reopened": (f) => [...fill("tl_ticket_reopened", { ticket: ticket(f), by: f.by }), ...said(f.reason)],
  "tickets.sla_breached": (f) => fill("tl_sla_breached", { ticket: ticket(f), target: t(`tl_sla_${f.target}`), priority: priority(f.priority) }),
  "tickets.ticket_escalated": (f) => fill("tl_ticket_escalated", { ticket: ticket(f), target: t(`tl_sla_${f.target}`) }),
  "tickets.follow_up_visit_recorded": (f) => [...fill(f.satisfied ? "tl_visit_satisfied" : "tl_visit_unsatisfied", { ticket: ticket(f), by: f.visited_by }), ...said(f.outcome)],
  "tickets.ticket_customer_changed": (f) => fill("tl_ticket_moved_here", { ticket: ticket(f), from: person(f.previous_customer_id) }),
  "tickets.survey_sent": (f) => fill(`tl_survey_sent_${f.kind}`, {}),
  "tickets.csat_answered": (f) => [...fill("tl_csat_answered", { score: number(f.score), ticket: ticket(f) }), ...said(f.comment)],
  "tickets.nps_answered": (f) => [...fill("tl_nps_answered", { score: number(f.score), group: tOr(`nps_group_${f.group}`, f.group) }), ...said(f.comment)],

  "loyalty.points_earned": (f) => fill(f.order_number || f.order_id ? "tl_points_earned_order" : "tl_points_earned", {
    points: points(f.points), why: tOr(`earned_for_${f.reason}`, f.reason || ""), order: order(f),
  }),
  "loyalty.points_clawed_back": (f) => [...fill("tl_points_clawed_back", { points: points(f.points), order: order(f) }),
    ...(f.owed ? fill("tl_points_owed", { owed: points(f.owed) }) : [])],
  "loyalty.owed_points_recovered": (f) => fill("tl_owed_points_recovered", { points: points(f.points) }),
  "loyalty.points_redeemed": (f) => fill("tl_points_redeemed", { points: points(f.points), reward: reward(f.reward_id), by: f.by }),
  "loyalty.redemption_cancelled": (f) => fill("tl_redemption_cancelled", { points: points(f.points), reward: reward(f.reward_id) }),
  "loyalty.points_expired": (f) => fill("tl_points_expired", { points: points(f.points) }),
  "loyalty.points_adjusted": (f) => [...fill(f.points < 0 ? "tl_points_deducted" : "tl_points_added", { points: points(f.points), by: f.by }), ...said(f.reason)],
  "loyalty.ledger_transferred_out": (f) => fill("tl_ledger_transferred_out", { points: points(f.points), survivor: person(f.survivor_id) }),
  "loyalty.ledger_transferred_in": (f) => fill("tl_ledger_transferred_in", { points: points(f.points), duplicate: person(f.duplicate_id) }),
  "loyalty.tier_changed": (f) => fill("tl_tier_changed", { from: tier(f.from_tier), to: tier(f.to_tier) }),
  "loyalty.tier_at_risk": (f) => fill("tl_tier_at_risk", { tier: tier(f.tier), on: day(f.downgrade_at) }),
  "loyalty.tier_kept": (f) => fill("tl_tier_kept", { tier: tier(f.tier) }),
  "loyalty.checked_in": (f) => fill("tl_checked_in", { streak: number(f.streak) }),

  "alerts.churn_risk_changed": (f) => [...fill(rank(f.to_level) > rank(f.from_level) ? "tl_risk_rose" : "tl_risk_fell", {
    from: level(f.from_level), to: level(f.to_level), score: number(f.score),
  }), ...because(f.reasons)],
  "alerts.alert_opened": (f) => [...fill("tl_alert_opened", { level: level(f.level), score: number(f.score) }), ...because(f.reasons)],
  "alerts.alert_acknowledged": (f) => fill("tl_alert_acknowledged", { by: f.by }),
  "alerts.alert_closed": (f) => [...fill(`tl_alert_${f.closure}`, { by: f.by || "" }), ...said(f.reason)],
};

const LEVELS = ["none", "low", "medium", "high"];
function rank(name) { return LEVELS.indexOf(name); }

export function describe(entry) {
  const [, service, name] = String(entry.type).split(".");
  const line = LINES[`${service}.${name}`];
  if (!entry.facts || !line) return entry.summary;
  try {
    return line(entry.facts);
  } catch (error) {
    console.warn(`console: cannot render ${entry.type}`, error);
    return entry.summary;
  }
}
