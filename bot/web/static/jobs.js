// Live job table: the server pushes the job list whenever it changes; the rows are rebuilt from it.
"use strict";
(() => {
  const table = document.getElementById("jobs");
  if (!table) return;
  const body = table.tBodies[0];
  const kind = table.dataset.kind;
  const csrf = document.querySelector("meta[name=csrf-token]").content;

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  function row(job) {
    const tr = document.createElement("tr");
    tr.dataset.jobId = job.id;
    tr.append(cell(job.id), cell(job.kind), cell(job.target), cell(job.engine), cell(job.status, "status"));
    const td = document.createElement("td");
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = job.percent;
    bar.setAttribute("aria-label", `job ${job.id} progress`);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = ` ${job.percent}%`;
    td.append(bar, pct);
    tr.append(td);
    tr.append(cell(job.eta_seconds && !job.finished ? `${Math.round(job.eta_seconds)} s` : "", "eta"));
    tr.append(cell(job.message, "message"));
    const actions = document.createElement("td");
    if (!job.finished) {
      const form = document.createElement("form");
      form.method = "post";
      form.action = `/admin/jobs/${job.id}/cancel`;
      form.className = "inline";
      const token = document.createElement("input");
      token.type = "hidden";
      token.name = "csrf";
      token.value = csrf;
      const button = document.createElement("button");
      button.type = "submit";
      button.className = "danger";
      button.textContent = "Cancel";
      form.append(token, button);
      actions.append(form);
    }
    tr.append(actions);
    return tr;
  }

  function show(jobs) {
    const picked = kind ? jobs.filter((j) => j.kind === kind) : jobs;
    if (!picked.length) {
      const tr = document.createElement("tr");
      tr.className = "none";
      const td = cell("No jobs yet.");
      td.colSpan = 9;
      tr.append(td);
      body.replaceChildren(tr);
      return;
    }
    body.replaceChildren(...picked.map(row));
  }

  const events = new EventSource("/admin/jobs/events");
  events.addEventListener("jobs", (e) => show(JSON.parse(e.data)));
  table.dataset.live = "1";
})();
