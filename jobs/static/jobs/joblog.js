// The admin job page: follow a running job's chunk log until the job ends.
"use strict";
(function () {
  const log = document.getElementById("spool-chunk-log");
  if (!log || log.dataset.finished === "1") return;
  const url = log.dataset.chunksUrl;
  const body = log.querySelector("tbody");
  const text = log.querySelector(".spool-log-text");
  const status = log.querySelector(".spool-log-status");
  let cursor = Number(log.dataset.cursor || 0);

  function addRow(row) {
    const tr = document.createElement("tr");
    for (const value of [row.seq, row.type, row.choice]) {
      const td = document.createElement("td");
      td.textContent = String(value);
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = row.data;
    td.appendChild(code);
    tr.appendChild(td);
    body.appendChild(tr);
  }

  async function poll() {
    try {
      const response = await fetch(`${url}?cursor=${cursor}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const page = await response.json();
      page.chunks.forEach(addRow);
      text.textContent += page.text;
      cursor = page.cursor;
      const empty = log.querySelector(".spool-log-empty");
      if (empty && page.chunks.length) empty.remove();
      status.textContent = page.finished ? page.status : `${page.status} · live`;
      if (page.finished) return;
    } catch (error) {
      // Shown, not swallowed; the next poll may succeed.
      status.textContent = `error reading the log: ${error.message}; retrying`;
    }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
