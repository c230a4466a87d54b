// CSV import: a job (decision 0015). Submit the file, then poll the job for its
// progress bar and, once done, its per-row report.
import { api, get } from "../api.js";
import { t } from "../i18n.js";
import { h, messageBox, problemText, replace, table } from "../ui.js";

export function importPanel(onClose) {
  const file = h("input", { id: "import-file", type: "file", accept: ".csv,text/csv", required: true });
  const progress = h("progress", { class: "progress", max: 1, value: 0, "aria-label": t("import_csv") });
  const state = h("div", { "aria-live": "polite" });
  let timer = null;

  async function follow(id) {
    try {
      const job = await get(`customers/imports/${id}`);
      progress.max = Math.max(job.progress.rows_total, 1);
      progress.value = job.progress.rows_done;
      const parts = [h("p", {}, t("import_status", { status: `${job.status} ${job.progress.rows_done}/${job.progress.rows_total}` }))];
      if (job.report) {
        const rows = [
          ...job.report.errors.map((e) => ({ row: e.row, field: e.field, reason: e.reason, link: null })),
          ...job.report.duplicates.map((d) => ({ row: d.row, field: d.field || "", reason: d.reason, link: d.existing_id })),
        ].sort((a, b) => a.row - b.row);
        parts.push(h("p", {}, `${job.report.created} / ${job.report.rows}`),
          h("h3", {}, t("import_report")),
          table([
            { label: "#", cell: (r) => r.row },
            { label: t("name"), cell: (r) => r.field },
            { label: t("reason"), cell: (r) => (r.link ? h("a", { href: `#/customers/${encodeURIComponent(r.link)}` }, r.reason) : r.reason) },
          ], rows));
      }
      if (job.failure) parts.push(messageBox(job.failure));
      replace(state, parts);
      if (job.status === "queued" || job.status === "running") timer = setTimeout(() => follow(id), 1000);
    } catch (problem) {
      replace(state, messageBox(problemText(problem)));
    }
  }

  const form = h("form", { class: "card" },
    h("h2", {}, t("import_csv")),
    h("div", { class: "field" }, h("label", { for: "import-file" }, t("import_file")), file),
    progress, state,
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary" }, t("import_start")),
      h("button", { type: "button", onclick: () => { clearTimeout(timer); onClose(); } }, t("close"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    const body = new FormData();
    body.append("file", file.files[0]);
    try {
      const { data } = await api("customers/imports", { method: "POST", body });
      follow(data.id);
    } catch (problem) {
      replace(state, messageBox(problemText(problem)));
    }
  });
  return form;
}
