// Why an alarm was raised, on the status page: click an alarm row and this panel draws
// the alarm's window snapshot (the channel's last model steps up to the moment), the
// forecast made then (drawn ahead of it) and the rule's limit as a line, and lists what
// tripped it, the score's parts and the channel that contributed most. The data is the
// alarm's `reason` from GET alarms/{id}, fetched on the click (the table polls without).
"use strict";
(function () {
  const HEIGHT = 200;
  const view = { plot: null, alarmId: null };
  window.edgeReason = view; // read by the browser tests

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const num = (v) => (v === null || v === undefined || !isFinite(v) ? "—" : String(+Number(v).toPrecision(4)));
  const when = (ts) => new Date(ts * 1000).toLocaleString();

  // Columns for uPlot: x (UNIX seconds), the window's values, the forecast path (joined
  // to the last value it was made at, so the line goes on from there) and the limit when
  // it is in the channel's units (value and forecast rules; a score or a rate is not).
  function columns(reason) {
    const w = reason.window;
    const rows = new Map();
    w.ts.forEach((t, i) => rows.set(t, [w.values[i], null]));
    if (w.forecast.length && w.forecast_ts !== null) {
      const start = rows.get(w.forecast_ts);
      if (start) start[1] = start[0];
      w.horizons_s.forEach((h, i) => {
        const t = w.forecast_ts + h;
        const row = rows.get(t) || [null, null];
        row[1] = w.forecast[i];
        rows.set(t, row);
      });
    }
    const x = [...rows.keys()].sort((a, b) => a - b);
    const inUnits = reason.trigger === "value" || reason.trigger === "forecast";
    const limit = inUnits && reason.limit !== null ? reason.limit : null;
    return [x, x.map((t) => rows.get(t)[0]), x.map((t) => rows.get(t)[1]), x.map(() => limit)];
  }

  function drawChart(reason) {
    const box = $("reason-chart");
    if (view.plot) { view.plot.destroy(); view.plot = null; }
    box.replaceChildren();
    if (!reason.window || reason.window.ts.length === 0) {
      box.append(el("p", { class: "muted" }, "No window recorded (the channel had no model step yet)."));
      return;
    }
    const options = {
      width: Math.max(240, box.clientWidth || 600),
      height: HEIGHT,
      scales: { x: { time: true } },
      series: [
        {},
        { label: "value", stroke: "#1f5fae", width: 1.5, spanGaps: true },
        { label: "forecast", stroke: "#b35900", width: 1.5, dash: [6, 4], spanGaps: true },
        { label: "limit", stroke: "#b3261e", width: 1, dash: [2, 3] },
      ],
      axes: [{}, { size: 56 }],
    };
    view.plot = new uPlot(options, columns(reason), box);
  }

  function item(list, term, detail) {
    list.append(el("dt", {}, term), el("dd", {}, detail));
  }

  function describe(alarm) {
    const r = alarm.reason;
    const list = $("reason-parts");
    list.replaceChildren();
    $("reason-title").textContent = `#${alarm.id} ${alarm.rule} on ${alarm.channel} · raised ${when(alarm.raised_at)}`;
    if (!r) {
      item(list, "reason", "not recorded (raised before this agent kept reasons)");
      return;
    }
    const op = r.direction === "below" ? "≤" : "≥";
    const tripped = r.limit === null ? r.trigger : `${r.trigger} ${num(r.value)} ${op} limit ${num(r.limit)}`;
    item(list, "tripped by", tripped);
    item(list, "top channel", r.top_channel);
    if (r.conditions.length) item(list, "conditions", r.conditions.join(", "));
    const parts = Object.entries(r.parts);
    if (parts.length) item(list, "score parts", parts.map(([k, v]) => `${k} ${num(v)}`).join(" · "));
    else item(list, "score parts", "none (no anomaly score yet)");
    const w = r.window;
    if (w && w.forecast.length) {
      const ahead = w.horizons_s.map((h, i) => `+${window.edgeCharts.fmtSeconds(h)}: ${num(w.forecast[i])}`);
      item(list, "forecast then", ahead.join(" · "));
    }
  }

  async function open(alarmId) {
    view.alarmId = alarmId;
    mark();
    const r = await fetch(`alarms/${alarmId}`, { cache: "no-store" });
    if (view.alarmId !== alarmId) return; // another row was clicked meanwhile
    const panel = $("alarm-reason");
    panel.classList.remove("hidden");
    if (!r.ok) {
      $("reason-title").textContent = `#${alarmId}: HTTP ${r.status}`;
      $("reason-parts").replaceChildren();
      drawChart({});
      return;
    }
    const alarm = await r.json();
    describe(alarm);
    drawChart(alarm.reason || {});
  }

  function close() {
    view.alarmId = null;
    if (view.plot) { view.plot.destroy(); view.plot = null; }
    $("alarm-reason").classList.add("hidden");
    mark();
  }

  // status.js redraws the table on every poll: mark the shown alarm's row again.
  function mark() {
    for (const tr of document.querySelectorAll("#alarms tr[data-alarm]")) {
      tr.classList.toggle("selected", Number(tr.dataset.alarm) === view.alarmId);
    }
  }

  $("alarms").addEventListener("click", (e) => {
    if (e.target.closest("button")) return; // acknowledge, unfold
    const tr = e.target.closest("tr[data-alarm]");
    if (tr) open(Number(tr.dataset.alarm)).catch((err) => { $("reason-title").textContent = String(err); });
  });
  $("alarm-reason").querySelector("button.close").addEventListener("click", close);
  new MutationObserver(mark).observe($("alarms"), { childList: true });
})();
