// Service: the ticket queue with live SLA countdowns (the clock ticks every second
// on the page; the list is read again every 15 s), a ticket's SLA clocks, complaints
// awaiting their follow-up visit, and CSAT / NPS / SLA compliance.
import { get } from "../api.js";
import { t } from "../i18n.js";
import { chart, duration, h, replace, section, table, when } from "../ui.js";
import { customerLink, nameCustomers } from "../names.js";

const POLL_MS = 15000;
const STATUSES = ["open", "pending", "solved", "closed"];

export function countdown(dueAt, now = Date.now()) {
  if (!dueAt) return h("span", { class: "muted" }, "—");
  const seconds = (new Date(dueAt).getTime() - now) / 1000;
  const kind = seconds < 0 ? "overdue" : seconds < 3600 ? "soon" : "";
  return h("span", { class: `countdown ${kind}`, dataset: { due: dueAt } },
    seconds < 0 ? `${t("overdue")} ${duration(-seconds)}` : duration(seconds));
}

export function render(view) {
  const status = h("select", { id: "ticket-status" }, h("option", { value: "" }, t("status_any")),
    STATUSES.map((s) => h("option", { value: s, selected: s === "open" }, t(`ticket_status_${s}`))));
  const breached = h("input", { id: "ticket-breached", type: "checkbox" });
  const queue = h("div", { id: "queue", "aria-live": "polite" });
  const detail = h("div");
  const followUps = h("section", { class: "card", "aria-labelledby": "h-follow" });
  const stats = h("section", { class: "card", "aria-labelledby": "h-stats" });
  let timer = null;
  let ticker = null;

  async function openTicket(id) {
    await section(detail, async () => {
      const ticket = await get(`tickets/${encodeURIComponent(id)}`);
      const clocks = ticket.sla ? Object.entries(ticket.sla.targets || ticket.sla).filter(([, v]) => v && typeof v === "object") : [];
      replace(detail, h("section", { class: "card", id: "ticket-detail" },
        h("h2", {}, ticket.subject || id),
        h("dl", { class: "facts" },
          h("dt", {}, t("status")), h("dd", {}, t(`ticket_status_${ticket.status}`)),
          h("dt", {}, t("priority")), h("dd", {}, t(`priority_${ticket.priority}`)),
          h("dt", {}, t("customer")), h("dd", {}, customerLink(ticket.customer_id)),
          clocks.map(([target, clock]) => [h("dt", {}, target === "first_response" ? t("sla_first_response") : target === "resolution" ? t("sla_resolution") : target),
            h("dd", {}, countdown(clock.due_at), clock.outcome ? ` · ${clock.outcome}` : "")])),
        h("button", { type: "button", onclick: () => replace(detail) }, t("close"))));
    });
  }

  async function loadQueue() {
    await section(queue, async () => {
      const page = await get("tickets", { status: status.value, breached: breached.checked ? "true" : undefined, limit: 100 });
      await nameCustomers(page.items.map((x) => x.customer_id));
      replace(queue, table([
        { label: t("subject"), cell: (x) => h("a", { href: "#/service", onclick: (e) => { e.preventDefault(); openTicket(x.id); } }, x.subject) },
        { label: t("customer"), cell: (x) => customerLink(x.customer_id) },
        { label: t("priority"), cell: (x) => h("span", { class: `badge ${x.priority === "urgent" || x.priority === "high" ? "high" : ""}` }, t(`priority_${x.priority}`)) },
        { label: t("status"), cell: (x) => [t(`ticket_status_${x.status}`), x.breached ? [" ", h("span", { class: "badge breached" }, t("overdue"))] : null] },
        { label: t("due"), cell: (x) => countdown(x.next_due_at) },
        { label: t("ticket_opened"), cell: (x) => when(x.opened_at) },
      ], page.items, { caption: t("ticket_queue") }));
    });
  }

  async function loadFollowUps() {
    await section(followUps, async () => {
      const page = await get("tickets", { category: "complaint", status: "solved", limit: 50 });
      await nameCustomers(page.items.map((x) => x.customer_id));
      replace(followUps, h("h2", { id: "h-follow" }, t("follow_ups")), table([
        { label: t("subject"), cell: (x) => x.subject },
        { label: t("customer"), cell: (x) => customerLink(x.customer_id) },
        { label: t("ticket_solved"), cell: (x) => when(x.solved_at || x.opened_at) },
      ], page.items));
    });
  }

  async function loadStats() {
    await section(stats, async () => {
      const to = new Date(Date.now() + 60000);
      const from = new Date(to.getTime() - 30 * 86400000);
      const s = await get("service-stats", { from: from.toISOString(), to: to.toISOString() });
      const compliance = Object.entries(s.sla_compliance || {});
      replace(stats, h("h2", { id: "h-stats" }, t("csat_nps")),
        h("dl", { class: "facts" },
          h("dt", {}, t("csat")), h("dd", {}, s.csat.percent_satisfied === null ? "—" : `${s.csat.percent_satisfied}% (${s.csat.answers})`),
          h("dt", {}, t("nps")), h("dd", {}, s.nps.score === null ? "—" : `${s.nps.score} (${s.nps.answers})`),
          h("dt", {}, t("complaints_open")), h("dd", {}, String(s.complaints_open))),
        !s.csat.answers && !s.nps.answers && !compliance.length
          ? h("p", { class: "muted" }, t("surveys_empty"))
          : chart({
          type: "bar",
          data: {
            labels: [t("csat"), t("nps"), ...compliance.map(([k]) => `${t("compliance")} ${k}`)],
            datasets: [{ data: [s.csat.percent_satisfied ?? 0, s.nps.score ?? 0, ...compliance.map(([, v]) => (typeof v === "number" ? v * 100 : v?.percent ?? 0))], backgroundColor: "#1f5fbf" }],
          },
          options: { plugins: { legend: { display: false } } },
        }, t("csat_nps")));
    });
  }

  async function poll() {
    await loadQueue();
    timer = setTimeout(poll, POLL_MS);
  }
  // The countdowns tick without asking the server: the due times do not move.
  ticker = setInterval(() => {
    for (const node of view.querySelectorAll(".countdown[data-due]")) node.replaceWith(countdown(node.dataset.due));
  }, 1000);

  status.addEventListener("change", loadQueue);
  breached.addEventListener("change", loadQueue);
  replace(view, h("h1", {}, t("service_title")),
    h("section", { class: "card stack", "aria-labelledby": "h-queue" },
      h("h2", { id: "h-queue" }, t("ticket_queue")),
      h("div", { class: "row" },
        h("label", { for: "ticket-status" }, t("status")), status,
        h("label", { for: "ticket-breached" }, breached, " ", t("breached_only"))),
      queue),
    detail,
    h("div", { class: "grid" }, followUps, stats));
  loadQueue().then(() => { timer = setTimeout(poll, POLL_MS); });
  loadFollowUps();
  loadStats();
  return () => { clearTimeout(timer); clearInterval(ticker); };
}
