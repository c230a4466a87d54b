// Pipeline: a kanban of deals by stage. Dragging a card (or choosing "Move to" from
// the keyboard) moves the deal with If-Match: the version the board showed. Someone
// else's move in between answers 412; the board says so and shows the deal where it is.
import { api, get } from "../api.js";
import { t } from "../i18n.js";
import { session } from "../session.js";
import { chart, day, h, money, notice, problemText, promptDialog, replace, section, stageName, table } from "../ui.js";
import { customerLink, nameCustomers } from "../names.js";

const POLL_MS = 15000;

export function render(view) {
  const board = h("div", { class: "kanban", id: "kanban" });
  const funnelBox = h("section", { class: "card", "aria-labelledby": "h-funnel" });
  const tasksBox = h("section", { class: "card", "aria-labelledby": "h-tasks" });
  const mayMove = session.may("deals:write");
  let stages = [];
  let dragged = null;
  let timer = null;

  async function move(deal, stage) {
    if (stage === deal.stage) return;
    let reason = "";
    if (stages.find((s) => s.name === stage)?.outcome === "lost") {
      const values = await promptDialog({ title: t("lost_reason"), confirm: t("save"), fields: [{ name: "reason", label: t("lost_reason"), required: true, multiline: true }] });
      if (!values) return;
      reason = values.reason;
    }
    try {
      await api(`deals/${encodeURIComponent(deal.id)}/stage`, { method: "POST", body: { stage, reason }, ifMatch: deal.version });
      notice(t("deal_moved"));
    } catch (problem) {
      notice(problem.status === 412 || problem.status === 409 ? t("deal_conflict") : problemText(problem), "error");
    }
    await loadBoard();
  }

  function card(deal) {
    const node = h("article", {
      class: "deal", draggable: mayMove ? "true" : null, id: `deal-${deal.id}`, dataset: { dealId: deal.id },
      "aria-label": deal.title,
    },
    h("strong", {}, deal.title), h("div", { class: "small" }, customerLink(deal.customer_id)),
    h("div", { class: "small" }, money(deal.amount, deal.currency), " · ", deal.owner_id || ""),
    mayMove ? [h("label", { class: "visually-hidden", for: `move-${deal.id}` }, `${t("move_to")} ${deal.title}`),
      h("select", { id: `move-${deal.id}`, class: "move", onchange: (event) => move(deal, event.target.value) },
        stages.map((s) => h("option", { value: s.name, selected: s.name === deal.stage }, stageName(s.name))))] : null);
    if (mayMove) {
      node.addEventListener("dragstart", (event) => {
        dragged = deal;
        node.setAttribute("aria-grabbed", "true");
        event.dataTransfer.setData("text/plain", deal.id);
      });
      node.addEventListener("dragend", () => node.removeAttribute("aria-grabbed"));
    }
    return node;
  }

  async function loadBoard() {
    await section(board, async () => {
      const [stageList, deals] = await Promise.all([get("deal-stages"), get("deals", { limit: 200 })]);
      stages = stageList.stages;
      await nameCustomers(deals.items.map((d) => d.customer_id));
      replace(board, stages.map((stage) => {
        const inStage = deals.items.filter((d) => d.stage === stage.name);
        const column = h("section", { class: "column", dataset: { stage: stage.name }, "aria-label": stageName(stage.name) },
          h("h2", {}, h("span", {}, stageName(stage.name)), h("span", { class: "muted small" }, `${stage.probability}% · ${inStage.length}`)),
          inStage.map(card));
        if (mayMove) {
          column.addEventListener("dragover", (event) => { event.preventDefault(); column.classList.add("drop-target"); });
          column.addEventListener("dragleave", () => column.classList.remove("drop-target"));
          column.addEventListener("drop", (event) => {
            event.preventDefault();
            column.classList.remove("drop-target");
            if (dragged) move(dragged, stage.name);
            dragged = null;
          });
        }
        return column;
      }));
    });
  }

  async function loadFunnel() {
    await section(funnelBox, async () => {
      const to = new Date();
      const from = new Date(to.getTime() - 90 * 86400000);
      const funnel = await get("funnel", { from: from.toISOString(), to: new Date(to.getTime() + 60000).toISOString() });
      if (!funnel.stages.some((stage) => stage.deals)) {
        replace(funnelBox, h("h2", { id: "h-funnel" }, t("funnel")), h("p", { class: "muted" }, t("funnel_empty")));
        return;
      }
      replace(funnelBox, h("h2", { id: "h-funnel" }, t("funnel")),
        chart({
          type: "bar",
          data: { labels: funnel.stages.map((s) => stageName(s.stage)), datasets: [{ label: t("deals"), data: funnel.stages.map((s) => s.deals), backgroundColor: "#1f5fbf" }] },
          options: { indexAxis: "y", plugins: { legend: { display: false } } },
        }, t("funnel")),
        table([
          { label: t("stage"), cell: (s) => stageName(s.stage) },
          { label: t("deals"), cell: (s) => s.deals },
          { label: t("probability"), cell: (s) => `${s.probability}%` },
        ], funnel.stages, { caption: t("funnel") }),
        funnel.forecast.map((f) => h("p", { class: "small" }, `${money(f.weighted, f.currency)} / ${money(f.amount, f.currency)}`)));
    });
  }

  async function loadTasks() {
    await section(tasksBox, async () => {
      const tasks = await get("tasks", { assignee: session.me().subject, status: "open", limit: 50 });
      replace(tasksBox, h("h2", { id: "h-tasks" }, t("my_tasks")), table([
        { label: t("subject"), cell: (task) => task.title || task.summary || task.id },
        { label: t("customer"), cell: (task) => (task.customer_id ? customerLink(task.customer_id) : "") },
        { label: t("due"), cell: (task) => day(task.due_at || task.due_on) },
      ], tasks.items));
    });
  }

  async function poll() {
    await loadBoard();
    timer = setTimeout(poll, POLL_MS);
  }

  replace(view, h("div", { class: "row spread" }, h("h1", {}, t("pipeline_title")),
    h("button", { type: "button", onclick: () => { loadBoard(); loadFunnel(); loadTasks(); } }, t("refresh"))),
  mayMove ? null : h("p", { class: "muted" }, t("read_only")),
  board, h("div", { class: "grid" }, funnelBox, tasksBox));
  loadBoard().then(() => { timer = setTimeout(poll, POLL_MS); });
  loadFunnel();
  loadTasks();
  return () => clearTimeout(timer);
}
