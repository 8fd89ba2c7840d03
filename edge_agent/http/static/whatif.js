// The what-if form and chart of the status page (docs/twin.md): shown when the agent has
// a twin (GET twin answers); a scenario per control is typed as "value minutes" segments,
// e.g. "0.9 30, 0.6 30" (load 90 % for 30 minutes, then 60 %). One chart per channel with
// the predicted path and its band; the first limit crossing is named below the form.
(function () {
  "use strict";
  const ui = { info: null, plots: [] };
  window.edgeWhatIf = ui; // read by the browser tests

  function token() { return sessionStorage.getItem("edge-agent-token"); }

  function parseSegments(text, control) {
    const parts = text.split(",").map((p) => p.trim()).filter((p) => p);
    if (!parts.length) throw new Error(`${control}: type at least one "value minutes" segment`);
    return parts.map((part, i) => {
      const [value, minutes, extra] = part.split(/\s+/).map(Number);
      if (extra !== undefined || !Number.isFinite(value) || !Number.isFinite(minutes)) {
        throw new Error(`${control}, segment ${i + 1}: "${part}" is not "value minutes"`);
      }
      return { value, minutes };
    });
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function buildForm(info) {
    const fields = document.getElementById("whatif-controls");
    fields.replaceChildren();
    info.controls.forEach((c) => {
      const bounds = info.bounds[c] ? ` (${info.bounds[c][0]}…${info.bounds[c][1]})` : "";
      const label = el("label", {}, `${c}${bounds} `);
      const input = el("input", { type: "text", name: c, size: "24", value: "0.9 30, 0.6 30", "data-control": c });
      label.appendChild(input);
      fields.appendChild(label);
    });
    document.getElementById("whatif-note").textContent =
      `${info.model}: ${info.period_s / 60}-minute periods, up to ${info.horizon_steps * info.period_s / 60} minutes ahead.`;
  }

  function drawAnswer(answer) {
    ui.plots.forEach((p) => p.destroy());
    ui.plots = [];
    const box = document.getElementById("whatif-charts");
    box.replaceChildren();
    const now = Date.now() / 1000;
    const xs = answer.after_s.map((s) => now + s);
    // Every card first, then the charts: a card's width is known once the grid holds all.
    const cards = answer.channels.map((c) => {
      const card = el("div", { class: "channel", "data-whatif": c.channel });
      card.appendChild(el("h3", {}, c.channel));
      box.appendChild(card);
      return card;
    });
    answer.channels.forEach((c, i) => {
      const card = cards[i];
      const opts = {
        width: Math.max(300, card.clientWidth - 16), height: 160,
        series: [{}, { label: "lower", stroke: "rgba(31,95,174,0.3)" }, { label: "predicted", stroke: "#1f5fae", width: 2 }, { label: "upper", stroke: "rgba(31,95,174,0.3)" }],
        bands: [{ series: [3, 1], fill: "rgba(31,95,174,0.12)" }],
        scales: { x: { time: true } },
      };
      ui.plots.push(new uPlot(opts, [xs, c.lower, c.values, c.upper], card));
    });
    const crossing = answer.crossing;
    document.getElementById("whatif-crossing").textContent = crossing
      ? `${crossing.channel} reaches ${crossing.limit} (rule ${crossing.rule}) in ${crossing.after_s / 60} minutes (predicted ${crossing.value.toFixed(2)}).`
      : "No alarm limit is reached within the scenario.";
  }

  function problemText(body) {
    if (Array.isArray(body.detail)) return body.detail.map((d) => (d.msg.startsWith(d.loc.slice(1).join(".")) ? d.msg : `${d.loc.slice(1).join(".")}: ${d.msg}`)).join("; ");
    return String(body.detail);
  }

  async function submit(event) {
    event.preventDefault();
    const error = document.getElementById("whatif-error");
    error.textContent = "";
    let controls;
    try {
      controls = {};
      document.querySelectorAll("#whatif-controls input").forEach((input) => {
        controls[input.dataset.control] = parseSegments(input.value, input.dataset.control);
      });
    } catch (e) { error.textContent = e.message; return; }
    const headers = { "Content-Type": "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    const r = await fetch("twin/whatif", { method: "POST", headers, body: JSON.stringify({ controls }) });
    const body = await r.json();
    if (!r.ok) { error.textContent = problemText(body); return; }
    ui.answer = body;
    drawAnswer(body);
  }

  async function start() {
    const r = await fetch("twin", { cache: "no-store" });
    if (!r.ok) return;
    const info = await r.json();
    if (!info.available) return; // no twin here, or it did not load: the section stays hidden
    ui.info = info;
    buildForm(ui.info);
    document.getElementById("whatif-form").addEventListener("submit", submit);
    document.getElementById("whatif").classList.remove("hidden");
  }

  start();
})();
