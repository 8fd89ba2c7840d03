// The agent's local status page: polls /status, the data of each channel (charts.js),
// and /alarms of the same server. No external resources; every failure shows as a
// banner, never a blank page. Each poll fetches everything first and then paints, so
// the first paint already shows the data the store holds.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const POLL_MS = Number(params.get("poll_ms")) || 2000;
  const ALARM_LIMIT = 500;
  const DETAIL_MAX = 20; // earlier alarms listed under an unfolded group
  const { ChannelChart, fmtSeconds, horizonsSeconds } = window.edgeCharts;
  const state = {
    charts: {}, updates: 0, lastError: null, expanded: new Set(),
    range: Number(params.get("range")) || Number(localStorage.getItem("edge-range")) || 300,
  };
  window.edgeStatus = state; // read by the browser tests and handy in the console

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
    if (s < 172800) return `${(s / 3600).toFixed(1)} h ago`;
    return `${(s / 86400).toFixed(1)} days ago`;
  };
  const isActive = (a) => a.state.startsWith("active");

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

  // Red when an output that reaches people (anything but the log) is failing: the
  // control room is not getting the alarms. Amber when events were dropped.
  function renderActions(s) {
    const list = $("actions");
    const actions = s.actions || [];
    list.replaceChildren();
    if (!actions.length) list.append(el("li", { class: "muted" }, "none"));
    let failing = false, dropped = false;
    for (const a of actions) {
      const li = el("li", { "data-action": a.name });
      const cls = a.is_failing ? "bad" : a.dropped ? "warn" : "ok";
      const word = a.is_failing ? "failing" : a.last_success ? "ok" : "idle";
      li.append(el("strong", {}, a.name), el("span", { class: "muted" }, ` ${a.type} `), el("span", { class: `${cls} action-state` }, word));
      if (a.is_failing) {
        failing = failing || a.type !== "log";
        li.append(el("div", { class: "bad" }, `${a.last_error} (${ago(a.last_error_at)})`));
      }
      const parts = [`last success ${ago(a.last_success)}`];
      if (a.queue_depth) parts.push(`${a.queue_depth} queued`);
      if (a.failed) parts.push(`${a.failed} given up`);
      if (a.dropped) { parts.push(`${a.dropped} dropped`); dropped = true; }
      li.append(el("div", { class: "muted" }, parts.join(" · ")));
      list.append(li);
    }
    const card = $("actions-card");
    card.classList.toggle("alert", failing);
    card.classList.toggle("caution", !failing && dropped);
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
    const d = s.store.details || {};
    box.replaceChildren();
    if (d.reading_rows !== undefined && d.reading_rows !== null) {
      box.append(el("div", { id: "store-readings" }, `${Number(d.reading_rows).toLocaleString("en-US")} readings`));
    }
    const facts = [];
    if (d.file_bytes) facts.push(`${(Number(d.file_bytes) / 1048576).toFixed(1)} MB`);
    if (d.last_flush_ts) facts.push(`written ${ago(d.last_flush_ts)}`);
    if (d.flush_failures) facts.push(`${d.flush_failures} failed writes`);
    if (facts.length) box.append(el("div", { class: d.flush_failures ? "warn" : "muted" }, facts.join(" · ")));
    box.append(el("div", { class: "muted" }, s.store.path));
  }

  function channelCard(ch) {
    let card = document.querySelector(`.channel[data-channel="${CSS.escape(ch.name)}"]`);
    if (card) return card;
    card = el("div", { class: "channel", "data-channel": ch.name });
    card.append(el("h3", {}, ch.name), el("div", { class: "channel-meta muted" }),
      el("div", { class: "empty muted hidden" }), el("div", { class: "plot" }));
    $("channels").append(card);
    state.charts[ch.name] = new ChannelChart(ch.name, card.querySelector(".plot"));
    return card;
  }

  function forecastText(ch, chart) {
    const f = ch.forecast;
    if (!f || !f.values.length) return "forecast —";
    const ahead = horizonsSeconds(f, chart.period);
    const i = f.values.length - 1;
    const at = ahead ? ` in ${fmtSeconds(ahead[i])}` : ` ${f.horizons[i]} steps ahead`;
    return `forecast ${fmt(f.values[i])}${at}`;
  }

  function renderChannel(ch, sourceState, levels) {
    const card = channelCard(ch);
    const chart = state.charts[ch.name];
    chart.levels = levels.filter((l) => l.channel === ch.name);
    chart.setForecast(ch);
    const health = ch.health.length ? ` · ${ch.health.join(", ")}` : "";
    const meta = card.querySelector(".channel-meta");
    meta.textContent = `last ${fmt(ch.last_value)} ${ch.unit} · ${forecastText(ch, chart)} · score ${fmt(ch.anomaly_score, 3)}${ch.is_warm ? "" : " (warming up)"}${health}`;
    meta.classList.toggle("bad", ch.health.length > 0);
    const empty = card.querySelector(".empty");
    const hasData = chart.hasData();
    if (!hasData) {
      empty.textContent = ch.readings > 0 || ch.last_ts
        ? `no data in the last ${fmtSeconds(state.range)}`
        : `waiting for the first sample from ${ch.source} (${sourceState || "unknown"})`;
      empty.classList.toggle("bad", sourceState === "disconnected");
    }
    show(empty, !hasData);
    chart.draw();
  }

  function renderNoChannels(s) {
    const none = $("no-channels");
    const loading = $("channels-loading");
    if (loading) loading.remove();
    const hasData = s.channels.some((c) => c.readings > 0 || state.charts[c.name]?.hasData());
    if (hasData) { show(none, false); return; }
    if (!s.model) none.textContent = "No data: the agent is not running without a model.";
    else if (!s.sources.length) none.textContent = "No data yet: no sources are configured.";
    else none.textContent = `No data yet: waiting for the first reading from ${s.sources.map((x) => `${x.name} (${x.state})`).join(", ")}.`;
    show(none, true);
  }

  function withToken(headers) {
    const t = token();
    return t ? { ...headers, Authorization: `Bearer ${t}` } : headers;
  }

  // The request the agent's CSRF protection accepts from its own page: a JSON POST
  // (a cross-site form cannot send Content-Type: application/json without a preflight).
  function postAck(id) {
    return fetch(`alarms/${id}/ack`, { method: "POST", headers: withToken({ "Content-Type": "application/json" }), body: "{}" });
  }

  async function acknowledge(ids, button) {
    button.disabled = true;
    for (const id of ids) {
      let r = await postAck(id);
      if (r.status === 401) {
        const given = window.prompt("This agent needs its HTTP token to acknowledge alarms:");
        if (given) {
          sessionStorage.setItem("edge-agent-token", given);
          r = await postAck(id);
        }
      }
      if (!r.ok) { button.disabled = false; setConnection(`acknowledge failed: HTTP ${r.status}`); return; }
    }
    await refreshAlarms();
  }

  // One group per (rule, channel), its alarms newest first; groups with an active alarm
  // first (critical before warning), then by their newest raise.
  function groupAlarms(alarms) {
    const groups = new Map();
    for (const a of alarms) {
      const key = `${a.rule}\u0000${a.channel}`;
      if (!groups.has(key)) groups.set(key, { key, rule: a.rule, channel: a.channel, alarms: [] });
      groups.get(key).alarms.push(a);
    }
    const list = [...groups.values()];
    for (const g of list) {
      g.alarms.sort((x, y) => y.raised_at - x.raised_at || y.id - x.id);
      g.latest = g.alarms[0];
      g.active = g.alarms.filter(isActive);
    }
    const rank = (g) => (g.active.length ? (g.active.some((a) => a.severity === "critical") ? 0 : 1) : 2);
    list.sort((x, y) => rank(x) - rank(y) || y.latest.raised_at - x.latest.raised_at);
    return list;
  }

  function ackCell(alarm, unacked) {
    const td = el("td", { class: "ack" });
    if (alarm.acked_at) td.textContent = `${when(alarm.acked_at)}${alarm.acked_by ? " by " + alarm.acked_by : ""}`;
    if (unacked.length) {
      const b = el("button", { type: "button", "data-ack": unacked[0].id }, unacked.length > 1 ? `Acknowledge ${unacked.length}` : "Acknowledge");
      b.addEventListener("click", () => acknowledge(unacked.map((a) => a.id), b).catch((e) => setConnection(String(e))));
      td.replaceChildren(b);
    }
    return td;
  }

  function groupBody(g) {
    const body = el("tbody", { "data-group": `${g.rule}/${g.channel}` });
    const a = g.active.length ? g.active[0] : g.latest;
    const sev = a.severity === "critical" ? "bad" : "warn";
    const tr = el("tr", { "data-alarm": a.id, class: g.active.length ? `active ${a.severity}` : "" });
    const count = el("td", { class: "count" });
    if (g.alarms.length > 1) {
      const open = state.expanded.has(g.key);
      const toggle = el("button", { type: "button", class: "link", "aria-expanded": String(open) }, `${g.alarms.length} ${open ? "▾" : "▸"}`);
      toggle.addEventListener("click", () => { open ? state.expanded.delete(g.key) : state.expanded.add(g.key); refreshAlarms().catch((e) => setConnection(String(e))); });
      count.append(toggle);
    } else count.textContent = "1";
    const unacked = g.active.filter((x) => !x.acked_at);
    tr.append(el("td", { class: isActive(a) ? sev : "muted" }, a.state.replace("_", ", ")), el("td", { class: sev }, a.severity),
      el("td", {}, g.rule), el("td", {}, g.channel), count, el("td", {}, when(g.latest.raised_at)),
      el("td", {}, a.message), ackCell(a, unacked));
    body.append(tr);
    if (state.expanded.has(g.key)) {
      const rest = g.alarms.filter((x) => x !== a);
      for (const x of rest.slice(0, DETAIL_MAX)) {
        const row = el("tr", { class: "detail", "data-alarm": x.id });
        const cleared = x.cleared_at ? `cleared ${when(x.cleared_at)}` : x.state.replace("_", ", ");
        row.append(el("td", { colspan: 5 }, `#${x.id} · ${cleared}`), el("td", {}, when(x.raised_at)), el("td", {}, x.message),
          ackCell(x, isActive(x) && !x.acked_at ? [x] : []));
        body.append(row);
      }
      if (rest.length > DETAIL_MAX) {
        const more = el("tr", { class: "detail" });
        more.append(el("td", { colspan: 8 }, `… ${rest.length - DETAIL_MAX} earlier (GET /alarms has them all)`));
        body.append(more);
      }
    }
    return body;
  }

  function renderChannelFilter(alarms) {
    const select = $("alarm-channel");
    const known = new Set([...select.options].map((o) => o.value));
    const names = [...new Set([...Object.keys(state.charts), ...alarms.map((a) => a.channel)])].sort();
    for (const name of names) if (!known.has(name)) select.append(el("option", { value: name }, name));
  }

  async function refreshAlarms() {
    const [active, recent] = await Promise.all([getJson("alarms?active=true&limit=1000&reason=false"), getJson(`alarms?limit=${ALARM_LIMIT}&reason=false`)]);
    const byId = new Map(recent.map((a) => [a.id, a]));
    for (const a of active) byId.set(a.id, a); // active ones even when older than the newest 500
    let alarms = [...byId.values()];
    renderChannelFilter(alarms);
    const channel = $("alarm-channel").value;
    const onlyActive = $("alarm-filter").value === "active";
    if (channel) alarms = alarms.filter((a) => a.channel === channel);
    const nActive = alarms.filter(isActive).length;
    if (onlyActive) alarms = alarms.filter(isActive);
    const groups = groupAlarms(alarms);
    const table = $("alarms");
    for (const old of table.querySelectorAll("tbody")) old.remove();
    for (const g of groups) table.append(groupBody(g));
    show(table, groups.length > 0);
    const none = $("no-alarms");
    none.textContent = onlyActive ? "No active alarms." : "No alarms.";
    show(none, groups.length === 0);
    $("alarm-summary").textContent = `${nActive} active${recent.length >= ALARM_LIMIT ? ` · the newest ${ALARM_LIMIT} alarms` : ""}`;
  }

  function setConnection(message) {
    const banner = $("connection");
    banner.textContent = message || "";
    show(banner, Boolean(message));
  }

  let timer = null, busy = false, again = false;
  async function tick() {
    clearTimeout(timer);
    if (busy) { again = true; return; } // a range change during a poll: poll again after it
    busy = true;
    try {
      const s = await getJson("status");
      for (const ch of s.channels) channelCard(ch);
      // Data first, paint after: no "waiting" flash when the store has data.
      await Promise.all(s.channels.map((ch) => state.charts[ch.name].load(ch, state.range)));
      renderHeader(s); renderModel(s); renderSources(s); renderActions(s); renderSync(s); renderStore(s);
      const sourceStates = Object.fromEntries(s.sources.map((x) => [x.name, x.state]));
      for (const ch of s.channels) renderChannel(ch, sourceStates[ch.source], s.alarm_levels || []);
      renderNoChannels(s);
      const modes = new Set(s.channels.map((c) => state.charts[c.name].mode));
      $("range-note").textContent = modes.has("summaries") ? "per-interval summaries: mean, min–max band; raw since the last interval" : "";
      await refreshAlarms();
      state.updates += 1;
      state.lastError = null;
      setConnection("");
      $("updated").textContent = new Date().toLocaleTimeString();
    } catch (e) {
      state.lastError = String(e);
      setConnection(`Cannot reach the agent (${e.message || e}); retrying every ${POLL_MS / 1000} s.`);
    } finally {
      busy = false;
      timer = setTimeout(tick, again ? 0 : POLL_MS);
      again = false;
    }
  }

  const range = $("range");
  if (![...range.options].some((o) => Number(o.value) === state.range)) state.range = 300;
  range.value = String(state.range);
  range.addEventListener("change", () => {
    state.range = Number(range.value);
    localStorage.setItem("edge-range", range.value);
    tick();
  });
  for (const id of ["alarm-filter", "alarm-channel"]) {
    $(id).addEventListener("change", () => refreshAlarms().catch((e) => setConnection(String(e))));
  }
  tick();
})();
