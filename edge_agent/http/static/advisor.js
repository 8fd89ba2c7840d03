// The advisor's card on the status page (docs/advisor.md): its recommendation and
// predicted margin, the value in force, the guards' verdict, and the operator override.
// A module of its own: it polls GET twin/advisor, adds its card to the health row only
// when the agent has an advisor ({"configured": false}: nothing shown, polling stops),
// and posts the override as JSON.
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const POLL_MS = Number(params.get("poll_ms")) || 2000;
  const state = { updates: 0, status: null, lastError: null };
  window.edgeAdvisor = state; // read by the browser tests and handy in the console

  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const fmt = (v, digits) => (v === null || v === undefined || !isFinite(v) ? "—" : Number(v).toFixed(digits ?? 2));

  function card() {
    let c = document.getElementById("advisor-card");
    if (c) return c;
    c = el("div", { class: "card", id: "advisor-card" });
    c.append(el("h2", {}, "Advisor"), el("div", { id: "advisor" }));
    const form = el("form", { id: "advisor-override", class: "advisor-override" });
    const input = el("input", { id: "advisor-value", type: "number", step: "0.01", "aria-label": "override value" });
    const hold = el("button", { type: "submit", id: "advisor-hold" }, "Hold");
    const release = el("button", { type: "button", id: "advisor-release" }, "Release");
    const note = el("div", { id: "advisor-note", class: "muted", role: "status" });
    form.append(input, hold, release, note);
    form.addEventListener("submit", (e) => { e.preventDefault(); override(input.value === "" ? null : Number(input.value)); });
    release.addEventListener("click", () => override(null));
    c.append(form);
    (document.querySelector("section.health") || document.body).append(c);
    return c;
  }

  function headers() {
    const t = sessionStorage.getItem("edge-agent-token");
    const h = { "Content-Type": "application/json" };
    return t ? { ...h, Authorization: `Bearer ${t}` } : h;
  }

  async function post(value) {
    return fetch("twin/advisor/override", { method: "POST", headers: headers(), body: JSON.stringify({ value, by: "status page" }) });
  }

  async function override(value) {
    const note = document.getElementById("advisor-note");
    let r = await post(value);
    if (r.status === 401) {
      const given = window.prompt("This agent needs its HTTP token to override the advisor:");
      if (given) { sessionStorage.setItem("edge-agent-token", given); r = await post(value); }
    }
    if (r.ok) {
      note.textContent = value === null ? "override released" : `holding at ${value}`;
      paint(await r.json());
      return;
    }
    let why = `HTTP ${r.status}`;
    try { const body = await r.json(); why = body.detail?.[0]?.msg || body.detail || why; } catch (e) { /* not JSON */ }
    note.textContent = `override refused: ${why}`;
  }

  function line(label, value, cls) {
    const d = el("div", cls ? { class: cls } : {});
    d.append(el("strong", {}, `${label}: `), document.createTextNode(value));
    return d;
  }

  function paint(s) {
    state.status = s;
    const c = card();
    const body = document.getElementById("advisor");
    const rows = [];
    rows.push(line("Mode", s.enabled ? `acting on ${s.control} via ${s.output}` : `advising only (${s.control})`));
    if (s.failure) rows.push(line("Fallback", `${s.failure} → safe ${fmt(s.safe_value)}`, "bad"));
    const rec = s.recommended === null ? "—" : `${fmt(s.recommended)}${s.feasible === false ? " (no value keeps every limit)" : ""}`;
    rows.push(line("Recommended", rec));
    if (s.margin !== null) rows.push(line("Predicted margin", `${fmt(s.margin, 1)} on ${s.tightest}`));
    rows.push(line("In force", s.applied === null ? "not written yet" : fmt(s.applied)));
    if (s.override !== null) rows.push(line("Override", `${fmt(s.override)}${s.override_by ? ` by ${s.override_by}` : ""}`, "caution"));
    if (s.verdict) rows.push(line("Guards", `${s.verdict.replace("_", " ")}${s.note ? ` (${s.note})` : ""}`));
    if (s.output_error) rows.push(line("Output", s.output_error, "bad"));
    body.replaceChildren(...rows);
    c.classList.toggle("alert", Boolean(s.failure) || s.feasible === false);
    c.classList.toggle("caution", !s.failure && s.override !== null);
    const input = document.getElementById("advisor-value");
    // The bounds as a hint only: the agent checks them and says why it refuses.
    input.placeholder = `${s.bounds[0]}–${s.bounds[1]}`;
    document.getElementById("advisor-override").classList.toggle("hidden", !s.enabled);
  }

  async function tick() {
    try {
      const r = await fetch("twin/advisor", { cache: "no-store", headers: headers() });
      if (!r.ok) throw new Error(`twin/advisor: HTTP ${r.status}`);
      const s = await r.json();
      if (!s.configured) return; // no advisor on this agent: no card, stop polling
      paint(s);
      state.updates += 1;
      state.lastError = null;
    } catch (e) {
      state.lastError = String(e); // status.js shows the connection banner
    }
    setTimeout(tick, POLL_MS);
  }
  tick();
})();
