// One chart per channel for the status page: the data over the chosen time range (raw
// readings while they fit one request, else the store's interval summaries as a
// mean line in a min–max band, then the raw readings since the last closed interval),
// the one-step forecast made for each sample, the forecast path ahead of the last
// sample, the alarm levels as lines, and the anomaly score on its own axis. Each chart
// follows its card's width (ResizeObserver → uPlot setSize).
"use strict";
(function () {
  const RAW_LIMIT = 10000; // /readings answers at most this many rows
  const HEIGHT = 220;
  const MAX_POINTS = 600; // summaries are bucketed so a range draws about this many

  const getJson = async (path) => {
    const r = await fetch(path, { cache: "no-store" });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  };
  const q = encodeURIComponent;

  // Seconds between samples, from the newest raw readings (the fallback period for a
  // forecast without horizon_s).
  function samplePeriod(ts) {
    const n = ts.length;
    if (n < 3) return null;
    const gaps = [];
    for (let i = Math.max(1, n - 50); i < n; i++) gaps.push(ts[i] - ts[i - 1]);
    gaps.sort((a, b) => a - b);
    return gaps[Math.floor(gaps.length / 2)] || null;
  }

  // Seconds ahead of each forecast horizon: horizon_s when the agent sends it (one per
  // horizon), else steps × the model's period (model_period_s) or the data's.
  function horizonsSeconds(forecast, period) {
    const given = forecast.horizon_s;
    if (Array.isArray(given) && given.length === forecast.values.length) return given;
    const step = forecast.model_period_s || period;
    if (!step) return null;
    return forecast.horizons.map((h) => h * step);
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined || !isFinite(s)) return "";
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${(s / 3600).toFixed(1).replace(/\.0$/, "")} h`;
    return `${(s / 86400).toFixed(1).replace(/\.0$/, "")} d`;
  }

  // "4k" rather than "4,000": the score axis is narrow.
  function compact(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
    if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
    return `${+v.toPrecision(3)}`;
  }

  class ChannelChart {
    constructor(name, container) {
      this.name = name;
      this.container = container;
      this.range = null;
      this.mode = "raw"; // or "summaries"
      this.raw = { ts: [], value: [], forecast: [], score: [] };
      this.sums = []; // summary points, oldest first
      this.levels = [];
      this.unit = "";
      this.ahead = null; // {ts: [...], values: [...]}
      this.plot = null;
      this.period = null;
      this.observer = new ResizeObserver(() => this.fit());
      this.observer.observe(container);
    }

    // Width of the card's plot area: the chart is sized from it, never the other way.
    width() { return Math.max(200, Math.floor(this.container.clientWidth)); }

    fit() {
      if (!this.plot) return;
      const w = this.width();
      if (Math.abs(this.plot.width - w) >= 1) this.plot.setSize({ width: w, height: HEIGHT });
    }

    hasData() { return this.raw.ts.length > 0 || this.sums.length > 0; }

    // Fetch what the range needs: everything when the range changed, else what is new.
    async load(ch, rangeS) {
      this.unit = ch.unit || "";
      // Data time: a replay of last year draws last year. Before the first sample since
      // a restart, the wall clock (the store may hold data from before the restart).
      const end = ch.last_ts ?? Date.now() / 1000;
      this.end = end;
      if (rangeS !== this.range) {
        this.range = rangeS;
        this.raw = { ts: [], value: [], forecast: [], score: [] };
        this.sums = [];
        const rows = await getJson(`readings?channel=${q(this.name)}&since=${end - rangeS}&limit=${RAW_LIMIT}`);
        // The newest RAW_LIMIT rows do not reach back to the range's start: summaries.
        const truncated = rows.length >= RAW_LIMIT && rows[0].ts > end - rangeS + 1;
        this.mode = truncated ? "summaries" : "raw";
        if (this.mode === "raw") this.appendRaw(rows);
        else await this.loadSummaries(end, rangeS, true);
      } else if (this.mode === "raw") {
        const last = this.raw.ts.length ? this.raw.ts[this.raw.ts.length - 1] : end - rangeS;
        this.appendRaw(await getJson(`readings?channel=${q(this.name)}&since=${last}&limit=${RAW_LIMIT}`));
      } else {
        await this.loadSummaries(end, rangeS, false);
      }
      this.trim(end - rangeS);
      this.period = samplePeriod(this.raw.ts) || this.period;
    }

    appendRaw(rows) {
      const r = this.raw;
      const last = r.ts.length ? r.ts[r.ts.length - 1] : -Infinity;
      for (const row of rows) {
        if (row.ts <= last) continue;
        r.ts.push(row.ts); r.value.push(row.value);
        r.forecast.push(row.forecast); r.score.push(row.anomaly_score);
      }
    }

    // Summaries of the range (refetched from the last bucket when a new interval has
    // closed), and the raw readings after the last closed one.
    async loadSummaries(end, rangeS, full) {
      const step = Math.ceil(rangeS / MAX_POINTS / 60) * 60;
      const bucket = rangeS / MAX_POINTS > 60 ? `&step=${step}` : "";
      const lastEnd = this.sums.length ? this.sums[this.sums.length - 1].end : null;
      const interval = this.sums.length ? this.sums[this.sums.length - 1].end - this.sums[this.sums.length - 1].start : 60;
      if (full || lastEnd === null || end >= lastEnd + interval) {
        const since = full || lastEnd === null ? end - rangeS : this.sums[this.sums.length - 1].start;
        const fresh = await getJson(`summaries?channel=${q(this.name)}&since=${since}${bucket}`);
        if (!full && this.sums.length) this.sums = this.sums.filter((s) => s.start < since);
        this.sums.push(...fresh);
      }
      const tailFrom = this.sums.length ? this.sums[this.sums.length - 1].end : end - rangeS;
      this.raw = { ts: [], value: [], forecast: [], score: [] };
      this.appendRaw(await getJson(`readings?channel=${q(this.name)}&since=${tailFrom}&limit=${RAW_LIMIT}`));
    }

    trim(since) {
      const r = this.raw;
      let cut = 0;
      while (cut < r.ts.length && r.ts[cut] < since) cut++;
      if (cut) for (const k of ["ts", "value", "forecast", "score"]) r[k].splice(0, cut);
      this.sums = this.sums.filter((s) => s.end > since);
    }

    setForecast(ch) {
      this.ahead = null;
      const f = ch.forecast;
      if (!f || ch.last_ts === null || ch.last_value === null) return;
      const ahead = horizonsSeconds(f, this.period);
      if (!ahead) return;
      const order = ahead.map((s, i) => i).sort((a, b) => ahead[a] - ahead[b]);
      this.ahead = {
        ts: [ch.last_ts, ...order.map((i) => ch.last_ts + ahead[i])],
        values: [ch.last_value, ...order.map((i) => f.values[i])],
        furthest: ahead[order[order.length - 1]],
      };
    }

    // uPlot's columns: x, value (or mean), [min, max: summaries only], forecast,
    // forecast ahead, score, then one flat line per alarm level.
    columns() {
      const x = [], value = [], lo = [], hi = [], fc = [], ahead = [], score = [];
      const first = this.sums.length ? this.sums[0].start : this.raw.ts.length ? this.raw.ts[0] : this.end;
      if (this.levels.length && this.end - this.range < first) {
        // An empty point at the range's start: the level lines cross the whole chart.
        x.push(this.end - this.range); value.push(null); lo.push(null); hi.push(null);
        fc.push(null); ahead.push(null); score.push(null);
      }
      for (const s of this.sums) {
        if (x.length && s.start - x[x.length - 1] > 1.5 * (s.end - s.start)) {
          x.push(s.start); value.push(null); lo.push(null); hi.push(null);
          fc.push(null); ahead.push(null); score.push(null);
        }
        x.push((s.start + s.end) / 2); value.push(s.mean); lo.push(s.min); hi.push(s.max);
        fc.push(null); ahead.push(null); score.push(s.score_max);
      }
      const gap = (a, b) => x.length && b - a > Math.max(5, 10 * (this.period || 0));
      const r = this.raw;
      for (let i = 0; i < r.ts.length; i++) {
        // A null between two samples far apart: the agent was off; draw no line over it.
        if (gap(x.length ? x[x.length - 1] : r.ts[i], r.ts[i])) {
          x.push(r.ts[i] - 1e-3); value.push(null); lo.push(null); hi.push(null);
          fc.push(null); ahead.push(null); score.push(null);
        }
        x.push(r.ts[i]); value.push(r.value[i]); lo.push(null); hi.push(null);
        fc.push(r.forecast[i]); ahead.push(null); score.push(r.score[i]);
      }
      if (this.ahead) {
        const a = this.ahead;
        const last = x.length ? x[x.length - 1] : -Infinity;
        for (let i = 0; i < a.ts.length; i++) {
          if (i === 0 && a.ts[0] === last) { ahead[ahead.length - 1] = a.values[0]; continue; }
          if (a.ts[i] <= last) continue;
          x.push(a.ts[i]); value.push(null); lo.push(null); hi.push(null);
          fc.push(null); ahead.push(a.values[i]); score.push(null);
        }
      }
      const cols = this.mode === "summaries" ? [x, value, lo, hi, fc, ahead, score] : [x, value, fc, ahead, score];
      for (const level of this.levels) cols.push(x.map(() => level.set));
      return cols;
    }

    levelKey() { return this.levels.map((l) => `${l.rule}:${l.set}`).join("|"); }

    options() {
      const unit = this.unit ? ` (${this.unit})` : "";
      const summaries = this.mode === "summaries";
      const series = [
        {},
        { label: summaries ? `mean${unit}` : `value${unit}`, stroke: "#1f5fae", width: 1.5 },
        ...(summaries ? [
          { label: "min", stroke: "rgba(31,95,174,0.35)", width: 1 },
          { label: "max", stroke: "rgba(31,95,174,0.35)", width: 1 },
        ] : []),
        { label: "forecast", stroke: "#b35900", width: 1, dash: [4, 3] },
        { label: "forecast ahead", stroke: "#b35900", width: 2, spanGaps: true, points: { show: true, size: 4 } },
        { label: "score", stroke: "rgba(142,68,173,0.55)", width: 1, scale: "score" },
      ];
      for (const level of this.levels) {
        const bad = level.severity === "critical";
        const sign = level.type.endsWith("_below") ? "≤" : "≥";
        const score = level.type.startsWith("score");
        const what = level.type.startsWith("forecast") ? "forecast " : score ? "score " : "";
        series.push({
          label: `${level.rule}: ${what}${sign} ${level.set}`,
          stroke: score ? "rgba(142,68,173,0.7)" : bad ? "#b3261e" : "#d97706",
          width: 1, dash: score ? [2, 3] : [8, 4], points: { show: false },
          ...(score ? { scale: "score" } : {}),
        });
      }
      // The score keeps to the lower half of the chart (its alarm level at most halfway
      // up), so it does not hide the values it scores.
      const scoreTop = Math.max(1, ...this.levels.filter((l) => l.type.startsWith("score")).map((l) => l.set));
      return {
        width: this.width(), height: HEIGHT,
        legend: { live: true },
        cursor: { points: { show: false } },
        // The whole range, even when the data covers part of it: the chosen range shows.
        scales: { x: { time: true, range: (u, lo, hi) => [Math.min(lo, this.end - this.range), Math.max(hi, this.end)] }, score: { range: (u, lo, hi) => [0, 2 * Math.max(scoreTop, hi || 0)] } },
        bands: summaries ? [{ series: [3, 2], fill: "rgba(31,95,174,0.12)" }] : [],
        series,
        axes: [{}, { size: 56 }, { scale: "score", side: 1, grid: { show: false }, size: 44, values: (u, ticks) => ticks.map(compact) }],
      };
    }

    draw() {
      if (!this.hasData()) return;
      this.drawnRange = this.range; // what the chart on screen shows (tests wait on it)
      const key = `${this.mode}|${this.levelKey()}|${this.unit}`;
      if (!this.plot || this.key !== key) {
        if (this.plot) this.plot.destroy();
        this.key = key;
        this.plot = new uPlot(this.options(), this.columns(), this.container);
      } else {
        this.plot.setData(this.columns());
      }
    }
  }

  window.edgeCharts = { ChannelChart, fmtSeconds, horizonsSeconds };
})();
