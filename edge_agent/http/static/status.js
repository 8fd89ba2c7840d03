// The agent's local status page: polls /status, /readings and /alarms of the same
// server and draws one uPlot chart per channel (value, one-step forecast, anomaly
// score). No external resources; every failure shows as a banner, never a blank page.
"use strict";
(function () {
  const POLL_MS = Number(new URLSearchParams(location.search).get("poll_ms")) || 2000;
  const MAX_POINTS = 600;
  const state = { charts: {}, series: {}, updates: 0, lastError: null };
  window.edgeStatus = state; // read by the browser test and handy in the console

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const show = (node, visible) => node.classList.toggle("hidden", !visible);
  const fmt = (v, digits) => (v === null || v === undefined || !isFinite(v) ? "—" : Number(v).toPrecision(digits || 4));
  const when = (ts) => (ts ? new Date(ts * 1000).toLocaleString() : "never");
  const ago = (ts) => {
    if (!ts) return "never";
    const s = Math.max(0, Date.now() / 1000 - ts);
    if (s < 90) return `${s.toFixed(0)} s ago`;
    if (s < 5400) return `${(s / 60).toFixed(0)} min ago`;
    return `${(s / 3600).toFixed(1)} h ago`;
  };

  function token() { return sessionStorage.getItem("edge-agent-token"); }

  async function getJson(path) {
    const r = await fetch(path, { cache: "no-store" });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  function renderHeader(s) {
    $("agent-name").textContent = s.agent.name;
    $("agent-meta").textContent = `edge-agent ${s.agent.version} · up ${ago(s.agent.started_at).replace(" ago", "")} · ${s.agent.is_ready ? "running" : "not running"}`;
    const problem = $("problem");
    problem.textContent = s.problem || "";
    show(problem, Boolean(s.problem));
  }

  function renderModel(s) {
    const box = $("model");
    box.replaceChildren();
    if (!s.model) {
      box.append(el("div", { class: "bad" }, "No model loaded"), el("div", { class: "muted" }, s.problem || "the agent has no model"));
      return;
    }
    const m = s.model;
    box.append(el("div", { class: "ok" }, `${m.name} ${m.version}`),
      el("div", { class: "muted" }, `${m.backend} · window ${m.window_length} · horizons ${m.horizons.join(", ")}`));
  }

  function renderSources(s) {
    const list = $("sources");
    list.replaceChildren();
    if (!s.sources.length) list.append(el("li", { class: "muted" }, "no sources configured"));
    for (const src of s.sources) {
      const cls = src.state === "connected" || src.state === "finished" ? "ok" : src.state === "starting" ? "warn" : "bad";
      const li = el("li", { "data-source": src.name });
      li.append(el("strong", {}, src.name), " ", el("span", { class: `${cls} source-state` }, src.state),
        el("span", { class: "muted" }, ` since ${ago(src.since)}`));
      if (src.state === "disconnected") {
        li.append(el("div", { class: "bad" }, `disconnected: ${src.last_error || "no data"}; last reading ${ago(src.last_reading_ts)}`));
      }
      list.append(li);
    }
  }

  function renderSync(s) {
    const box = $("sync");
    box.replaceChildren();
    const sync = s.sync;
    if (!sync.enabled) {
      box.append(el("div", { class: "muted" }, "disabled"));
    } else {
      const cls = sync.state === "idle" || sync.state === "sending" ? "ok" : sync.state === "backing_off" ? "warn" : "bad";
      box.append(el("div", { class: cls }, sync.state), el("div", { class: "muted" }, `last success ${ago(sync.last_success_ts)}`));
      if (sync.last_error && (!sync.last_success_ts || sync.last_error_ts > sync.last_success_ts)) {
        box.append(el("div", { class: "bad" }, sync.last_error));
      }
    }
    const backlog = Object.entries(sync.backlog || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    box.append(el("div", { class: "muted" }, `outbox: ${backlog || "empty"}`));
  }

  function renderStore(s) {
    const box = $("store");
    box.replaceChildren(el("div", { class: "muted" }, s.store.path));
    const d = s.store.details || {};
    if (d.readings !== undefined) box.append(el("div", {}, `${d.readings} readings`));
  }

  function channelCard(ch) {
    let card = document.querySelector(`.channel[data-channel="${CSS.escape(ch.name)}"]`);
    if (card) return card;
    card = el("div", { class: "channel", "data-channel": ch.name });
    card.append(el("h3", {}, ch.name), el("div", { class: "channel-meta muted" }),
      el("div", { class: "empty muted" }, "waiting for the first sample…"), el("div", { class: "plot" }));
    $("channels").append(card);
    return card;
  }

  function makeChart(ch, card) {
    const width = Math.max(320, card.clientWidth - 16);
    const opts = {
      width, height: 200,
      scales: { x: { time: true }, score: { range: (u, lo, hi) => [0, Math.max(1, hi || 0)] } },
      series: [
        {},
        { label: `value${ch.unit ? " (" + ch.unit + ")" : ""}`, stroke: "#1f5fae", width: 1.5 },
        { label: "forecast", stroke: "#b35900", width: 1, dash: [4, 3] },
        { label: "anomaly score", stroke: "#b3261e", width: 1, scale: "score" },
      ],
      axes: [{}, {}, { scale: "score", side: 1, grid: { show: false } }],
    };
    const s = state.series[ch.name];
    return new uPlot(opts, [s.ts, s.value, s.forecast, s.score], card.querySelector(".plot"));
  }

  async function updateChannel(ch, sourceState) {
    const card = channelCard(ch);
    const series = state.series[ch.name] || (state.series[ch.name] = { ts: [], value: [], forecast: [], score: [], last: null });
    const since = series.last === null ? "" : `&since=${series.last}`;
    const rows = await getJson(`readings?channel=${encodeURIComponent(ch.name)}&limit=${MAX_POINTS}${since}`);
    for (const r of rows) {
      if (series.last !== null && r.ts <= series.last) continue;
      series.ts.push(r.ts); series.value.push(r.value);
      series.forecast.push(r.forecast); series.score.push(r.anomaly_score);
      series.last = r.ts;
    }
    const extra = series.ts.length - MAX_POINTS;
    if (extra > 0) for (const k of ["ts", "value", "forecast", "score"]) series[k].splice(0, extra);
    const health = ch.health.length ? ` · ${ch.health.join(", ")}` : "";
    card.querySelector(".channel-meta").textContent =
      `last ${fmt(ch.last_value)} ${ch.unit} · forecast ${ch.forecast ? fmt(ch.forecast.values[0]) : "—"} · score ${fmt(ch.anomaly_score, 3)}${ch.is_warm ? "" : " (warming up)"}${health}`;
    card.querySelector(".channel-meta").classList.toggle("bad", ch.health.length > 0);
    const hasData = series.ts.length > 0;
    const empty = card.querySelector(".empty");
    empty.textContent = `waiting for the first sample from ${ch.source} (${sourceState || "unknown"})`;
    empty.classList.toggle("bad", sourceState === "disconnected");
    show(empty, !hasData);
    if (!hasData) return;
    if (!state.charts[ch.name]) state.charts[ch.name] = makeChart(ch, card);
    else state.charts[ch.name].setData([series.ts, series.value, series.forecast, series.score]);
  }

  function renderNoChannels(s) {
    const none = $("no-channels");
    if (s.channels.some((c) => c.readings > 0)) { show(none, false); return; }
    if (!s.model) none.textContent = "No data: the agent is not running without a model.";
    else if (!s.sources.length) none.textContent = "No data yet: no sources are configured.";
    else none.textContent = `No data yet: waiting for the first reading from ${s.sources.map((x) => `${x.name} (${x.state})`).join(", ")}.`;
    show(none, true);
  }

  async function acknowledge(id, button) {
    button.disabled = true;
    const headers = { "Content-Type": "application/json" };
    let r = await fetch(`alarms/${id}/ack`, { method: "POST", headers: withToken(headers), body: JSON.stringify({ by: "status page" }) });
    if (r.status === 401) {
      const given = window.prompt("This agent needs its HTTP token to acknowledge alarms:");
      if (given) {
        sessionStorage.setItem("edge-agent-token", given);
        r = await fetch(`alarms/${id}/ack`, { method: "POST", headers: withToken(headers), body: JSON.stringify({ by: "status page" }) });
      }
    }
    if (!r.ok) { button.disabled = false; setConnection(`acknowledge failed: HTTP ${r.status}`); return; }
    await refreshAlarms();
  }

  function withToken(headers) {
    const t = token();
    return t ? { ...headers, Authorization: `Bearer ${t}` } : headers;
  }

  async function refreshAlarms() {
    const alarms = await getJson("alarms?limit=50");
    const body = $("alarms").querySelector("tbody");
    body.replaceChildren();
    for (const a of alarms) {
      const tr = el("tr", { "data-alarm": a.id, class: a.state === "cleared" ? "" : "active" });
      const sev = a.severity === "critical" ? "bad" : "warn";
      tr.append(el("td", {}, a.id), el("td", {}, when(a.raised_at)), el("td", { class: sev }, a.severity),
        el("td", {}, a.rule), el("td", {}, a.channel), el("td", {}, a.state), el("td", {}, a.message));
      const ack = el("td", { class: "ack" });
      if (a.acked_at) ack.textContent = `${when(a.acked_at)}${a.acked_by ? " by " + a.acked_by : ""}`;
      else {
        const b = el("button", { type: "button", "data-ack": a.id }, "Acknowledge");
        b.addEventListener("click", () => acknowledge(a.id, b).catch((e) => setConnection(String(e))));
        ack.append(b);
      }
      tr.append(ack);
      body.append(tr);
    }
    show($("alarms"), alarms.length > 0);
    show($("no-alarms"), alarms.length === 0);
  }

  function setConnection(message) {
    const banner = $("connection");
    banner.textContent = message || "";
    show(banner, Boolean(message));
  }

  async function tick() {
    try {
      const s = await getJson("status");
      renderHeader(s); renderModel(s); renderSources(s); renderSync(s); renderStore(s); renderNoChannels(s);
      const sourceStates = Object.fromEntries(s.sources.map((x) => [x.name, x.state]));
      for (const ch of s.channels) await updateChannel(ch, sourceStates[ch.source]);
      await refreshAlarms();
      state.updates += 1;
      state.lastError = null;
      setConnection("");
      $("updated").textContent = new Date().toLocaleTimeString();
    } catch (e) {
      state.lastError = String(e);
      setConnection(`Cannot reach the agent (${e.message || e}); retrying every ${POLL_MS / 1000} s.`);
    } finally {
      setTimeout(tick, POLL_MS);
    }
  }

  tick();
})();
