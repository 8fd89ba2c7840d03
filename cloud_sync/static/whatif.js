// The fleet page's what-if form (docs/twin.md): a device, its load as "value minutes"
// segments and an optional limit ("bearing_temp >= 70"); answered by
// POST /fleet/devices/{name}/whatif (the session cookie) and drawn as one small SVG
// chart per channel: the predicted path and its band.
"use strict";
(function () {
  const ui = { answer: null };
  window.fleetWhatIf = ui; // read by the browser tests
  const form = document.getElementById("whatif-form");
  if (!form) return;
  const SVG = "http://www.w3.org/2000/svg";

  function segments(text) {
    const parts = text.split(",").map((p) => p.trim()).filter((p) => p);
    if (!parts.length) throw new Error('load: type at least one "value minutes" segment');
    return parts.map((part, i) => {
      const [value, minutes, extra] = part.split(/\s+/).map(Number);
      if (extra !== undefined || !Number.isFinite(value) || !Number.isFinite(minutes)) {
        throw new Error(`load, segment ${i + 1}: "${part}" is not "value minutes"`);
      }
      return { value, minutes };
    });
  }

  function limits(text) {
    if (!text.trim()) return [];
    const m = text.trim().match(/^([A-Za-z0-9_.-]+)\s*(>=|<=)\s*(-?[0-9.]+)$/);
    if (!m) throw new Error(`limit: "${text}" is not "channel >= level" or "channel <= level"`);
    return [{ rule: `${m[1]} ${m[2]} ${m[3]}`, channel: m[1], level: Number(m[3]), below: m[2] === "<=" }];
  }

  function chart(channel) {
    const w = 320, h = 110, pad = 4;
    const lo = Math.min(...channel.lower), hi = Math.max(...channel.upper);
    const span = hi - lo || 1, n = channel.values.length;
    const x = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, n - 1);
    const y = (v) => h - pad - ((v - lo) * (h - 2 * pad)) / span;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", w); svg.setAttribute("height", h);
    const band = document.createElementNS(SVG, "polygon");
    const upper = channel.upper.map((v, i) => `${x(i)},${y(v)}`);
    const lower = channel.lower.map((v, i) => `${x(i)},${y(v)}`).reverse();
    band.setAttribute("points", upper.concat(lower).join(" "));
    band.setAttribute("class", "band");
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", channel.values.map((v, i) => `${x(i)},${y(v)}`).join(" "));
    line.setAttribute("class", "line");
    svg.append(band, line);
    const box = document.createElement("div");
    box.className = "chart";
    box.dataset.whatif = channel.channel;
    const last = channel.values[n - 1];
    box.append(`${channel.channel}: ${channel.values[0].toFixed(2)} → ${last.toFixed(2)}`, svg);
    return box;
  }

  function problem(body) {
    if (Array.isArray(body.detail)) return body.detail.map((d) => (d.msg.startsWith(d.loc.slice(1).join(".")) ? d.msg : `${d.loc.slice(1).join(".")}: ${d.msg}`)).join("; ");
    return String(body.detail);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("whatif-error");
    error.textContent = "";
    let body;
    try {
      body = {
        controls: { load: segments(document.getElementById("whatif-load").value) },
        limits: limits(document.getElementById("whatif-limit").value),
      };
    } catch (e) { error.textContent = e.message; return; }
    const device = document.getElementById("whatif-device").value;
    const r = await fetch(`/fleet/devices/${encodeURIComponent(device)}/whatif`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const got = await r.json();
    if (!r.ok) { error.textContent = problem(got); return; }
    ui.answer = got;
    const a = got.answer, c = a.crossing;
    document.getElementById("whatif-result").textContent =
      `${got.device}, ${got.twin_source}, from the state synced up to ${new Date(got.state_end * 1000).toLocaleString()}: ` +
      (c ? `${c.channel} reaches ${c.limit} in ${c.after_s / 60} minutes.` : "no limit reached.");
    document.getElementById("whatif-charts").replaceChildren(...a.channels.map(chart));
  });
})();
