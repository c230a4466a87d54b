// Customer 360: everything about one customer on one page, kept fresh by polling the
// 360 view (a new interaction appears without a reload). Writes go to the owning
// service through the gateway; the view is then read at the version they produced.
import { api, get } from "../api.js";
import { t } from "../i18n.js";
import { session } from "../session.js";
import {
  confirmDialog, dateInput, dateOf, day, h, levelBadge, messageBox, money, notice, number, percent, phone, problemText, stageName, promptDialog, replace, section, table, when,
} from "../ui.js";
import { customerPicker } from "../picker.js";
import { reasonText } from "../reasons.js";
import { describe, nameTimeline } from "../timeline.js";
import { customerForm } from "./customer_form.js";

const POLL_MS = 5000;
const CONSENT_CHANNELS = ["email", "sms", "phone", "wechat"];
const INTERACTION_CHANNELS = ["phone", "email", "wechat", "sms", "visit", "meeting"];
const KINDS = ["profile", "interactions", "orders", "tickets", "points", "alerts"];

// Which filter an event type falls under (crm.<service>.<name>.v1).
export function kindOf(type) {
  const [, service, name = ""] = String(type).split(".");
  if (service === "contacts") return name.startsWith("interaction") ? "interactions" : "profile";
  if (service === "pipeline") return "orders";
  if (service === "tickets") return "tickets";
  if (service === "loyalty") return "points";
  if (service === "alerts") return "alerts";
  return "profile";
}

function endOfDay(date) { return date ? new Date(`${date}T23:59:59.999Z`) : null; }

export function render(view, [customerId]) {
  const id = encodeURIComponent(customerId);
  const state = { view: null, version: null, profile: null, asOf: "", kinds: new Set(KINDS), highlight: null };
  let timer = null;
  let stopped = false;

  const header = h("div");
  const panel = h("div");
  const profileBox = h("section", { class: "card", "aria-labelledby": "h-profile" });
  const riskBox = h("section", { class: "card", "aria-labelledby": "h-risk" });
  const salesBox = h("section", { class: "card", "aria-labelledby": "h-sales" });
  const serviceBox = h("section", { class: "card", "aria-labelledby": "h-service" });
  const loyaltyBox = h("section", { class: "card", "aria-labelledby": "h-loyalty" });
  const timelineList = h("div", { "aria-live": "polite" });
  const asOf = dateInput({ id: "as-of" });
  const freshness = h("p", { class: "muted small" });
  const kindFilters = h("fieldset", {}, h("legend", {}, t("timeline_kinds")),
    KINDS.map((kind) => h("label", {}, h("input", {
      type: "checkbox", name: "kind", value: kind, checked: true,
      onchange: (event) => { event.target.checked ? state.kinds.add(kind) : state.kinds.delete(kind); renderTimeline(); },
    }), t(`kind_${kind}`))));
  asOf.addEventListener("change", () => { state.asOf = dateOf(asOf); renderTimeline(); loadRisk(); });

  async function write(path, options, done) {
    try {
      const { data } = await api(path, options);
      notice(done || t("customer_saved"));
      await load(data?.version);
      return data;
    } catch (problem) {
      notice(problemText(problem), "error");
      if (problem.status === 412) await load();
      return null;
    }
  }
  const customerWrite = (path, method, body, done) =>
    write(`customers/${id}${path}`, { method, body, ifMatch: state.version }, done);

  function renderHeader() {
    const v = state.view;
    const actions = h("div", { class: "row" });
    if (session.may("customers:write") && !v.erased) {
      actions.append(h("button", { type: "button", id: "edit-customer", onclick: () => {
        replace(panel, customerForm({
          existing: { id: v.customer_id, ...state.profile }, version: state.version,
          onDone: (_, version) => { replace(panel); load(version); },
          onCancel: () => replace(panel),
        }));
      } }, t("edit_customer")));
    }
    if (session.may("interactions:write") && !v.erased) {
      actions.append(h("button", { type: "button", id: "log-interaction", onclick: logInteraction }, t("log_interaction")));
    }
    if (session.may("customers:merge") && !v.erased) {
      actions.append(h("button", { type: "button", id: "merge", onclick: merge }, t("merge")));
    }
    if (session.may("customers:erase") && !v.erased) {
      actions.append(h("button", { type: "button", class: "danger", id: "erase", onclick: erase }, t("erase")));
    }
    const tags = h("div", {}, v.tags.map((tag) => h("span", { class: "tag" }, tag,
      session.may("customers:write") ? h("button", {
        type: "button", "aria-label": t("remove_tag", { tag }),
        onclick: () => customerWrite(`/tags/${encodeURIComponent(tag)}`, "DELETE"),
      }, "×") : null)),
    session.may("customers:write") && !v.erased ? h("button", { type: "button", class: "small", id: "add-tag", onclick: addTag }, `+ ${t("add_tag")}`) : null);
    replace(header,
      h("div", { class: "row spread" }, h("h1", {}, v.profile.name || v.customer_id,
        " ", h("span", { class: "badge" }, t(`kind_${v.profile.kind || "person"}`))), actions),
      v.erased ? messageBox(t("erased"), "warn") : null,
      v.requested_id !== v.customer_id ? messageBox(`${v.requested_id} → ${v.customer_id}`, "info") : null,
      tags);
  }

  function renderProfile() {
    const v = state.view;
    const p = v.profile;
    const owner = h("span", {}, v.owner_id || "—",
      session.may("customers:write") && !v.erased ? h("button", { type: "button", class: "small", id: "change-owner", onclick: changeOwner }, t("change_owner")) : null);
    replace(profileBox,
      h("h2", { id: "h-profile" }, t("c360_profile")),
      h("dl", { class: "facts" },
        h("dt", {}, t("email")), h("dd", {}, p.email || "—"),
        h("dt", {}, t("phone")), h("dd", {}, phone(p.phone, p.phone_international) || "—"),
        h("dt", {}, t("birthday")), h("dd", {}, p.birthday ? day(p.birthday) : "—"),
        h("dt", {}, t("owner")), h("dd", {}, owner),
        h("dt", {}, t("registered")), h("dd", {}, when(p.registered_at)),
        Object.entries(p.attributes || {}).map(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))])),
      h("h3", {}, t("c360_key_contacts")),
      Object.keys(v.key_contacts).length
        ? h("dl", { class: "facts" }, Object.entries(v.key_contacts).map(([role, contact]) => [
          h("dt", {}, role), h("dd", {}, h("a", { href: `#/customers/${encodeURIComponent(contact)}` }, contact))]))
        : h("p", { class: "muted" }, t("nothing_yet")),
      h("h3", {}, t("c360_consent")),
      h("dl", { class: "facts" }, CONSENT_CHANNELS.map((channel) => {
        const decision = v.consent[channel];
        const granted = decision?.granted;
        return [h("dt", {}, t(`channel_${channel}`)), h("dd", {},
          decision ? `${granted ? t("granted") : t("withdrawn")} · ${decision.source} · ${day(decision.at)} ` : "— ",
          session.may("consent:write") && !v.erased ? h("button", {
            type: "button", class: "small",
            onclick: () => customerWrite(`/consents/${channel}`, "PUT", { granted: !granted, source: "console" }),
          }, granted ? t("withdraw") : t("grant")) : null)];
      })));
  }

  // An event behind a reason, named by when it happened (its line on the timeline).
  function evidenceLabel(eventId, i) {
    const entry = state.view?.timeline.find((line) => line.event_id === eventId);
    return entry ? day(entry.time) : `#${i + 1}`;
  }

  async function loadRisk() {
    await section(riskBox, async () => {
      const risk = await get(`customers/${id}/churn-risk`, { as_of: state.asOf || undefined });
      replace(riskBox,
        h("h2", { id: "h-risk" }, t("c360_risk")),
        h("p", {}, levelBadge(risk.level), " ", t("risk_score"), ": ", risk.score,
          h("span", { class: "muted small" }, ` · ${t("as_of")} ${when(risk.as_of)}`)),
        risk.revenue_at_risk !== null ? h("p", {}, `${t("revenue_at_risk")}: ${money(risk.revenue_at_risk)} · `,
          `${t("no_purchase_probability")}: ${percent(risk.no_purchase_probability)} · `,
          `${t("predicted_value")}: ${money(risk.predicted_value)}`) : null,
        risk.reasons.length
          ? h("ol", {}, risk.reasons.map((reason) => h("li", {}, `${reasonText(reason)} (+${reason.contribution})`,
            reason.event_ids.length ? h("div", { class: "small" }, `${t("risk_evidence")}: `,
              reason.event_ids.map((eventId, i) => [i ? ", " : "", h("a", {
                href: `#/customers/${id}`, onclick: (event) => { event.preventDefault(); showEvent(eventId); },
              }, evidenceLabel(eventId, i))])) : null)))
          : h("p", { class: "muted" }, t("risk_none")));
    });
  }

  function showEvent(eventId) {
    state.highlight = eventId;
    state.kinds = new Set(KINDS);
    for (const box of kindFilters.querySelectorAll("input")) box.checked = true;
    renderTimeline();
    document.getElementById(`event-${eventId}`)?.scrollIntoView({ block: "center" });
  }

  function renderSections() {
    const v = state.view;
    replace(salesBox, h("h2", { id: "h-sales" }, t("c360_sales")),
      v.purchases.map((p) => h("p", {}, `${money(p.spent, p.currency)} · ${p.orders} ${t("kind_orders")}`)),
      table([
        { label: t("subject"), cell: (d) => d.title },
        { label: t("stage"), cell: (d) => stageName(d.stage) },
        { label: t("amount"), cell: (d) => money(d.amount, d.currency) },
      ], v.deals),
      v.orders.length ? table([
        { label: "#", cell: (o) => o.external_id || o.order_id.slice(0, 8) },
        { label: t("amount"), cell: (o) => money(o.total, o.currency) },
        { label: t("status"), cell: (o) => t(`order_status_${o.status}`) },
        { label: t("order_placed"), cell: (o) => h("span", { class: "nowrap" }, day(o.placed_at)) },
      ], v.orders) : null);
    replace(serviceBox, h("h2", { id: "h-service" }, t("c360_service")),
      table([
        { label: t("subject"), cell: (k) => k.subject },
        { label: t("priority"), cell: (k) => t(`priority_${k.priority}`) },
        { label: t("status"), cell: (k) => [t(`ticket_status_${k.status}`), k.sla_breached ? h("span", { class: "badge breached" }, t("overdue")) : null] },
      ], v.tickets),
      v.service.last_csat ? h("p", {}, `${t("csat")}: ${v.service.last_csat.score ?? ""}`) : null,
      v.service.last_nps ? h("p", {}, `${t("nps")}: ${v.service.last_nps.score ?? ""}`) : null);
    replace(loyaltyBox, h("h2", { id: "h-loyalty" }, t("c360_loyalty")),
      v.loyalty
        ? [h("p", {}, `${t("balance")}: ${number(v.loyalty.balance)} · ${t("tier")}: ${v.loyalty.tier || "—"}`),
          h("a", { href: `#/loyalty/${id}` }, t("ledger"))]
        : h("p", { class: "muted" }, t("nothing_yet")));
  }

  function renderTimeline() {
    if (!state.view) return;
    const until = endOfDay(state.asOf);
    const entries = state.view.timeline.filter((entry) =>
      state.kinds.has(kindOf(entry.type)) && (!until || new Date(entry.time) <= until));
    replace(timelineList, entries.length
      ? h("ol", { class: "timeline", id: "timeline" }, entries.map((entry) => h("li", {
        id: `event-${entry.event_id}`, class: entry.event_id === state.highlight ? "highlight" : null,
        dataset: { kind: kindOf(entry.type) },
      }, h("time", { datetime: entry.time }, `${when(entry.time)} · ${t(`kind_${kindOf(entry.type)}`)}`), describe(entry))))
      : h("p", { class: "muted" }, t("nothing_yet")));
  }

  async function load(minVersion) {
    const [view360, profile] = await Promise.all([
      api(`customers/${id}/360`, { query: minVersion ? { min_version: minVersion, wait_ms: 3000 } : {} })
        .catch((problem) => (problem.status === 504 ? api(`customers/${id}/360`) : Promise.reject(problem))),
      api(`customers/${id}`).catch(() => null),
    ]);
    const changed = !state.view || JSON.stringify(state.view.freshness.version) !== JSON.stringify(view360.data.freshness.version)
      || state.view.timeline.length !== view360.data.timeline.length;
    state.view = view360.data;
    if (profile) { state.profile = profile.data; state.version = profile.version; }
    freshness.textContent = `${t("live")} · ${t("view_version", { version: state.view.freshness.version, at: when(state.view.freshness.updated_at) })}`;
    if (changed) {
      await nameTimeline(state.view.timeline);
      renderHeader(); renderProfile(); renderSections(); renderTimeline();
      loadRisk();
    }
  }

  async function poll() {
    if (stopped) return;
    try { await load(); } catch { /* the next poll tries again; the page keeps what it has */ }
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  }

  async function addTag() {
    const values = await promptDialog({ title: t("add_tag"), confirm: t("save"), fields: [{ name: "tag", label: t("tag"), required: true }] });
    if (values?.tag) customerWrite("/tags", "POST", { tags: [values.tag] });
  }
  async function changeOwner() {
    const values = await promptDialog({ title: t("change_owner"), confirm: t("save"), fields: [{ name: "owner_id", label: t("new_owner") }] });
    if (values) customerWrite("/owner", "PUT", { owner_id: values.owner_id || null });
  }
  async function logInteraction() {
    const channel = h("select", { id: "interaction-channel", name: "channel" }, INTERACTION_CHANNELS.map((c) => h("option", { value: c }, t(`channel_${c}`))));
    const direction = h("select", { id: "interaction-direction", name: "direction" },
      h("option", { value: "inbound" }, t("inbound")), h("option", { value: "outbound" }, t("outbound")));
    const summary = h("textarea", { id: "interaction-summary", name: "summary", rows: 3 });
    const form = h("form", { class: "card" }, h("h2", {}, t("log_interaction")),
      h("div", { class: "grid" },
        h("div", { class: "field" }, h("label", { for: "interaction-channel" }, t("channel")), channel),
        h("div", { class: "field" }, h("label", { for: "interaction-direction" }, t("direction")), direction)),
      h("div", { class: "field" }, h("label", { for: "interaction-summary" }, t("summary")), summary),
      h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, t("save")),
        h("button", { type: "button", onclick: () => replace(panel) }, t("cancel"))));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const done = await write(`customers/${id}/interactions`, {
        method: "POST", body: { channel: channel.value, direction: direction.value, summary: summary.value.trim() },
      });
      if (done) replace(panel);
    });
    replace(panel, form);
    channel.focus();
  }
  // The duplicate is found by searching, then named in the confirmation.
  function pickDuplicate() {
    return new Promise((resolve) => {
      const dialog = document.getElementById("dialog");
      const picker = customerPicker({
        id: "merge-search", label: t("merge_duplicate"), except: customerId,
        onPick: (customer) => { resolve(customer); dialog.close("picked"); },
      });
      replace(dialog, h("form", { method: "dialog" },
        h("h2", { id: "dialog-title" }, t("merge")),
        h("p", {}, t("merge_pick_help", { name: state.view.profile.name })),
        picker,
        h("div", { class: "row" }, h("button", { type: "submit", value: "cancel" }, t("cancel")))));
      dialog.addEventListener("close", () => resolve(null), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
      dialog.querySelector("#merge-search").focus();
    });
  }
  async function merge() {
    const duplicate = await pickDuplicate();
    if (!duplicate) return;
    const sure = await confirmDialog({
      title: t("merge"), confirm: t("merge"), danger: true,
      body: t("merge_confirm", { duplicate: duplicate.name, name: state.view.profile.name }),
    });
    if (sure) customerWrite("/merge", "POST", { duplicate_id: duplicate.id }, t("merged"));
  }
  async function erase() {
    const name = state.view.profile.name;
    const sure = await confirmDialog({
      title: t("erase"), confirm: t("erase"), danger: true, typed: name, body: t("erase_confirm", { name }),
    });
    if (sure) write(`customers/${id}/personal-data`, { method: "DELETE", ifMatch: state.version }, t("erased"));
  }

  replace(view, header, panel,
    h("div", { class: "grid" }, profileBox, riskBox),
    h("div", { class: "grid" }, salesBox, serviceBox, loyaltyBox),
    h("section", { class: "card", "aria-labelledby": "h-timeline" },
      h("div", { class: "row spread" }, h("h2", { id: "h-timeline" }, t("c360_timeline")),
        h("div", {}, h("label", { for: "as-of" }, t("as_of")), asOf)),
      kindFilters, timelineList, freshness));

  // The first read waits a moment for a customer registered just now (the view is
  // built from events, a few milliseconds behind the write).
  section(header, async () => { await load(1); timer = setTimeout(poll, POLL_MS); });
  return () => { stopped = true; clearTimeout(timer); };
}
