// Ops: each service's health and readiness (the gateway's /healthz and /readyz), its
// outbox backlog, projection lag, dead letters and rebuilds (every service's
// /api/v1/ops/<service>, decision 0075), and the 360 projection's partitions; polled
// every 10 s. Figures need ops:read (admin, manager, operator); a rebuild ops:rebuild
// (operator: the host's identity, since a rebuild swaps the view of every tenant).
import { api, get } from "../api.js";
import { t, tOr } from "../i18n.js";
import { session } from "../session.js";
import { confirmDialog, duration, h, messageBox, number, problemText, replace, section, table } from "../ui.js";

const POLL_MS = 10000;

async function probe(path) {
  // Health probes answer 503 with a body when something is down: read it anyway.
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  return response.json();
}

const badge = (kind, text) => h("span", { class: `badge ${kind}` }, text);
// A health state (up, down, ready, ok, degraded...) in the reader's language when known.
const state = (value) => tOr(`health_${value}`, value);

export function render(view) {
  const healthBox = h("section", { class: "card", "aria-labelledby": "h-health" });
  const servicesBox = h("section", { class: "card wide", "aria-labelledby": "h-outbox" });
  const lagBox = h("section", { class: "card", "aria-labelledby": "h-lag" });
  const readsOps = ["admin", "manager", "operator"].some((role) => session.hasRole(role));
  const rebuilds = session.hasRole("operator");
  let timer = null;
  // While a rebuild runs its progress is asked for more often than the rest.
  let following = null;
  let rebuildMessage = null;
  // The services the gateway routes to, from the last health probe.
  let health = null;

  async function startRebuild(service, projection) {
    const ok = await confirmDialog({ title: t("rebuild"), body: t("rebuild_confirm", { projection }), confirm: t("rebuild") });
    if (!ok) return;
    try {
      await api(`ops/${service}/projections/${encodeURIComponent(projection)}/rebuilds`, { method: "POST" });
      rebuildMessage = messageBox(t("rebuild_started", { projection }), "info");
    } catch (problem) {
      rebuildMessage = messageBox(problemText(problem), problem?.status === 409 ? "warn" : "error");
    }
    await loadServices();
  }

  function rebuildCell(service, p) {
    const job = p.rebuild;
    const running = job?.state === "running";
    const state = job
      ? h("span", { class: "rebuild-state", id: `rebuild-state-${p.name}` },
        badge(running ? "behind" : job.state === "activated" ? "ok" : "down", job.state),
        job.target ? [" ", h("progress", { max: job.target || 1, value: job.read, "aria-label": t("rebuild_read") }), ` ${job.read}/${job.target}`] : null,
        job.reasons.length ? h("small", { class: "muted" }, ` ${job.reasons.join("; ")}`) : null)
      : null;
    const button = rebuilds && p.rebuildable
      ? h("button", { type: "button", class: "rebuild", id: `rebuild-${p.name}`, disabled: running, title: running ? t("rebuild_running") : t("rebuild_note"), onclick: () => startRebuild(service, p.name) }, t("rebuild"))
      : null;
    if (!p.rebuildable) return h("span", { class: "muted small", title: t("not_rebuildable_note") }, t("not_rebuildable"));
    return [button, state];
  }

  function rowsOf(name, report) {
    const up = health?.upstreams?.[name];
    const base = {
      service: name,
      status: up?.status,
      outbox: report.outbox,
    };
    if (!report.projections.length) return [{ ...base, first: true, projection: null }];
    // The service's own figures once, on its first row.
    return report.projections.map((p, i) => ({ ...base, first: i === 0, projection: p }));
  }

  function serviceTable(rows) {
    return table([
      { label: t("service"), cell: (r) => h("span", { class: r.first ? "service-name" : "muted small" }, r.service) },
      { label: t("status"), cell: (r) => (r.first && r.status ? badge(r.status, state(r.status)) : "") },
      { label: t("outbox_backlog"), cell: (r) => (!r.first ? "" : r.error ? messageBox(r.error, "warn") : r.outbox ? h("span", { class: "backlog", "data-service": r.service }, badge(r.outbox.events ? "behind" : "ok", number(r.outbox.events))) : t("no_outbox")) },
      { label: t("oldest_unpublished"), cell: (r) => (r.first && r.outbox?.events ? duration(r.outbox.oldest_age_seconds) : "") },
      { label: t("projection"), cell: (r) => (r.projection ? `${r.projection.name} (g${r.projection.generation})` : "—") },
      { label: t("lag_both"), cell: (r) => (!r.projection ? "—" : r.projection.lag_events === null ? h("span", { class: "muted", title: r.projection.unmeasured }, t("unmeasured")) : [badge(r.projection.stalled ? "down" : r.projection.lag_events ? "behind" : "ok", number(r.projection.lag_events)), ` / ${r.projection.lag_seconds} s`]) },
      { label: t("dlq_messages"), cell: (r) => (!r.projection ? "—" : dlqCell(r.projection)) },
      { label: t("rebuild"), cell: (r) => (r.projection ? rebuildCell(r.service, r.projection) : "—") },
    ], rows, { caption: t("services_ops") });
  }

  function dlqCell(p) {
    const counted = p.dead_letters.filter((d) => d.messages !== null);
    if (counted.length < p.dead_letters.length) return h("span", { class: "muted", title: p.unmeasured }, t("unmeasured"));
    const total = counted.reduce((sum, d) => sum + d.messages, 0);
    return h("span", { title: p.dead_letters.map((d) => `${d.dlq_topic}: ${d.messages}`).join("\n") }, badge(total ? "down" : "ok", number(total)));
  }

  async function loadServices() {
    if (!readsOps) {
      replace(servicesBox, h("h2", { id: "h-outbox" }, t("services_ops")), h("p", { class: "muted" }, t("ops_read_note")));
      return;
    }
    await section(servicesBox, async () => {
      if (!health) health = await probe("/healthz");
      const names = Object.keys(health.upstreams).sort();
      const reports = await Promise.all(names.map((name) => get(`ops/${name}`).then(
        (report) => rowsOf(name, report),
        (problem) => [{ service: name, first: true, status: health.upstreams[name]?.status, error: problemText(problem), projection: null }])));
      replace(servicesBox, h("h2", { id: "h-outbox" }, t("services_ops")),
        serviceTable(reports.flat()),
        h("p", { class: "muted small" }, rebuilds ? t("rebuild_note") : t("rebuild_admin_note")),
        rebuildMessage);
      const running = reports.flat().some((r) => r.projection?.rebuild?.state === "running");
      clearTimeout(following);
      if (running && view.isConnected) following = setTimeout(loadServices, 1500);
    });
  }

  async function loadHealth() {
    await section(healthBox, async () => {
      const [fresh, ready] = await Promise.all([probe("/healthz"), probe("/readyz")]);
      health = fresh;
      const rows = Object.entries(fresh.upstreams).map(([name, report]) => ({ name, ...report, ready: ready.upstreams[name]?.status }));
      rows.unshift({ name: "gateway", status: fresh.database.status, latency_ms: fresh.database.latency_ms, ready: ready.status });
      replace(healthBox, h("h2", { id: "h-health" }, t("health"), " ", badge(fresh.status, state(fresh.status))),
        table([
          { label: t("service"), cell: (r) => r.name },
          { label: t("status"), cell: (r) => badge(r.status, state(r.status)) },
          { label: t("ready"), cell: (r) => badge(r.ready === "ready" ? "ready" : "down", r.ready ? state(r.ready) : "—") },
          { label: t("latency"), cell: (r) => (r.latency_ms === undefined ? r.detail || "" : h("span", { class: "nowrap" }, `${Math.round(r.latency_ms)} ms`)) },
        ], rows, { caption: t("health") }));
    });
  }

  async function loadLag() {
    await section(lagBox, async () => {
      const status = await get("projections/customer360/status");
      replace(lagBox, h("h2", { id: "h-lag" }, `${t("projection_lag")}: ${status.projection}`),
        h("dl", { class: "facts" },
          h("dt", {}, t("lag_events")), h("dd", { id: "lag-events" }, String(status.lag_events)),
          h("dt", {}, t("lag_seconds")), h("dd", {}, String(status.lag_seconds)),
          h("dt", {}, t("stalled")), h("dd", {}, badge(status.stalled ? "down" : "ok", status.stalled ? t("yes") : t("no"))),
          status.projector ? [
            h("dt", {}, t("restarts")), h("dd", {}, String(status.projector.restarts)),
            h("dt", {}, t("last_error")), h("dd", {}, status.projector.last_error || "—")] : null),
        h("details", {}, h("summary", {}, t("partitions")), table([
          { label: t("topic"), cell: (p) => `${p.topic}[${p.partition}]` },
          { label: t("lag_events"), cell: (p) => p.lag_events },
          { label: t("status"), cell: (p) => badge(p.state, p.state) },
        ], status.partitions)));
    });
  }

  async function poll() {
    await loadHealth();
    await Promise.all([loadServices(), loadLag()]);
    timer = setTimeout(poll, POLL_MS);
  }

  replace(view, h("h1", {}, t("ops_title")), h("div", { class: "grid" }, healthBox, lagBox, servicesBox));
  poll();
  return () => { clearTimeout(timer); clearTimeout(following); };
}
