// Televox dashboard: forms that post JSON to /api/v1, live progress over SSE, the AMI
// event tail and the cost chart. No polling: every live value arrives on an EventSource.
(function () {
  "use strict";
  const csrf = () => (document.querySelector('meta[name="csrf"]') || {}).content || "";

  // htmx requests (lead table paging and filters) carry the CSRF header as well.
  document.addEventListener("htmx:configRequest", (e) => {
    e.detail.headers["X-CSRF-Token"] = csrf();
  });

  function describe(res, data) {
    if (res.ok) return "";
    const d = data.detail;
    const text = typeof d === "string" ? d : (d && (d.reason || d.message)) || JSON.stringify(d || "");
    return "Error " + res.status + ": " + (data.error || "") + (text ? " (" + text + ")" : "");
  }

  // <form data-api="/api/v1/..." [data-method] [data-list="f1,f2"] [data-reload]>: the same
  // endpoint and guards as any API client, with the session cookie and the CSRF header.
  document.addEventListener("submit", async (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.api) return;
    ev.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const lists = (form.dataset.list || "").split(",").filter(Boolean);
    const body = {};
    for (const [k, v] of new FormData(form)) {
      if (k === "csrf" || v === "") continue;
      // A list field: one item a line (or comma/semicolon separated); phones have spaces.
      body[k] = lists.includes(k)
        ? String(v).split(/[\r\n,;]+/).map((x) => x.trim()).filter(Boolean) : v;
    }
    // <form data-upload>: the form as multipart (a file), not JSON.
    const upload = form.dataset.upload !== undefined;
    const form_data = new FormData(form);
    form_data.delete("csrf");
    const method = form.dataset.method || "POST";
    const out = form.querySelector("[data-result]") || document.getElementById("flash");
    const button = ev.submitter;
    if (button) button.disabled = true;
    let res = { ok: false, status: 0 };
    let data = {};
    try {
      res = await fetch(form.dataset.api, {
        method, credentials: "same-origin",
        headers: upload ? { "Accept": "application/json", "X-CSRF-Token": csrf() }
          : { "Content-Type": "application/json", "Accept": "application/json",
              "X-CSRF-Token": csrf() },
        body: method === "DELETE" ? undefined : upload ? form_data : JSON.stringify(body),
      });
      data = await res.json().catch(() => ({}));
    } catch (err) {
      data = { error: "network", detail: String(err) };
    }
    if (button) button.disabled = false;
    if (out) {
      let msg = res.ok ? (form.dataset.done || "Done.") : describe(res, data);
      if (res.ok && data.call_id) msg += " " + data.call_id;
      const sum = data.summary;
      if (res.ok && sum && sum.rows !== undefined) {
        msg += " " + sum.added + " added, " + sum.duplicate + " duplicate, " + sum.invalid +
          " invalid, " + sum.dnc + " on the DNC list (of " + sum.rows + " rows)";
      }
      out.textContent = msg;
      out.className = res.ok ? "ok" : "err";
    }
    if (res.ok && form.dataset.reload !== undefined) window.location.reload();
  });

  // Live progress: one EventSource for the page; every [data-progress=NAME] block
  // updates its <progress> and its [data-field] children.
  if (document.querySelector("[data-progress]")) {
    const es = new EventSource("/ui/progress");
    es.addEventListener("progress", (e) => {
      const snap = JSON.parse(e.data);
      for (const c of snap.campaigns) {
        for (const el of document.querySelectorAll('[data-progress="' + CSS.escape(c.name) + '"]')) {
          for (const bar of el.querySelectorAll("progress")) {
            bar.max = Math.max(c.total, 1);
            bar.value = c.done;
          }
          for (const f of el.querySelectorAll("[data-field]")) {
            if (f.dataset.field in c) f.textContent = c[f.dataset.field];
          }
          el.dataset.done = c.done;
          el.dataset.total = c.total;
          const target = el.dataset.refreshOnState;
          if (target && el.dataset.state && el.dataset.state !== c.state && window.htmx) {
            // The campaign changed state: fetch the buttons that fit the new one.
            window.htmx.ajax("GET", window.location.pathname,
                             { target, select: target, swap: "outerHTML" });
          }
          el.dataset.state = c.state;
        }
      }
    });
  }

  // The AMI event log, live: the API's SSE stream with the filters of the form.
  const tail = document.getElementById("event-tail");
  if (tail) {
    const form = document.getElementById("event-filters");
    const state = document.getElementById("tail-state");
    let es = null;
    const connect = () => {
      if (es) es.close();
      const fd = new FormData(form);
      const q = new URLSearchParams();
      for (const k of ["event", "call_id"]) if (fd.get(k)) q.set(k, fd.get(k));
      for (const f of String(fd.get("filter") || "").split(/\s+/).filter(Boolean)) q.append("filter", f);
      es = new EventSource("/api/v1/events/stream?" + q.toString());
      es.onopen = () => { state.textContent = "live"; };
      es.onerror = () => { state.textContent = "reconnecting…"; };
      es.addEventListener("ami", (e) => {
        const ev = JSON.parse(e.data);
        const tr = document.createElement("tr");
        const fields = Object.entries(ev.fields || {}).map(([k, v]) => k + "=" + v).join("  ");
        for (const text of [ev.id, ev.received_at, ev.event, ev.call_id || "", fields]) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.appendChild(td);
        }
        tail.prepend(tr);
        while (tail.rows.length > 500) tail.deleteRow(-1);
      });
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      tail.replaceChildren();
      const url = new URL(window.location.href);
      url.search = new URLSearchParams(new FormData(form)).toString();
      window.history.replaceState(null, "", url);
      connect();
    });
    connect();
  }

  // Minutes per day over 30 days (uPlot, vendored).
  const chart = document.getElementById("cost-chart");
  if (chart && window.uPlot) {
    const d = JSON.parse(document.getElementById("cost-data").textContent);
    const xs = d.days.map((s) => Date.parse(s + "T00:00:00Z") / 1000);
    const cost = d.minutes.map((m) => Math.round(m * d.rate * 100) / 100);
    new window.uPlot({
      width: Math.max(chart.clientWidth, 320), height: 220,
      series: [{},
        { label: "minutes", stroke: "#2563eb", fill: "rgba(37,99,235,0.15)", scale: "min" },
        { label: "cost (" + d.currency + ")", stroke: "#b45309", dash: [6, 4], scale: "cost" }],
      axes: [{}, { label: "minutes", scale: "min" },
             { label: d.currency, scale: "cost", side: 1, grid: { show: false } }],
    }, [xs, d.minutes, cost], chart);
  }
})();
