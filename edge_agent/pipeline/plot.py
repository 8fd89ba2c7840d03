"""`edge-agent replay --plot out.png`: values, forecasts, scores and alarms per channel.

Drawn from the replay's results CSV, read once as a stream: each channel keeps at most
``MAX_POINTS`` points (every k-th sample, k doubling as the file goes on), so a replay of
millions of samples plots in bounded memory; alarm spans are kept exactly (their starts
and ends, not sampled). matplotlib is optional on a device: ``matplotlib_missing()``
says so before the replay starts.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["MAX_POINTS", "matplotlib_missing", "plot_results"]

MAX_POINTS = 4000
"""Points per channel and series on the picture (a 1,600 px wide figure shows no more)."""


def matplotlib_missing() -> str | None:
    """Why ``--plot`` cannot draw here (matplotlib not installed), or None."""
    if importlib.util.find_spec("matplotlib") is None:
        return "--plot needs matplotlib: pip install matplotlib (the cloud extra has it)"
    return None


@dataclass(slots=True)
class _Series:
    """One channel's sampled columns, and its alarm spans (start, end, label)."""

    t: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    forecast: list[float] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    stride: int = 1
    seen: int = 0
    spans: list[tuple[float, float, str]] = field(default_factory=list)
    open_alarm: tuple[float, str] | None = None

    def add(self, t: float, value: float, forecast: float, score: float, alarm: str) -> None:
        if alarm and self.open_alarm is None:
            self.open_alarm = (t, alarm)
        elif not alarm and self.open_alarm is not None:
            self.spans.append((self.open_alarm[0], t, self.open_alarm[1]))
            self.open_alarm = None
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        self.t.append(t)
        self.value.append(value)
        self.forecast.append(forecast)
        self.score.append(score)
        if len(self.t) > MAX_POINTS:
            for column in (self.t, self.value, self.forecast, self.score):
                del column[1::2]
            self.stride *= 2

    def close(self) -> None:
        if self.open_alarm is not None and self.t:
            self.spans.append((self.open_alarm[0], self.t[-1], self.open_alarm[1]))
            self.open_alarm = None


def _number(cell: str) -> float:
    return float(cell) if cell else math.nan


def _read(results: Path) -> dict[str, _Series]:
    series: dict[str, _Series] = {}
    with results.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        # Columns by name: the longest-horizon forecast column is named for its horizon.
        at = {name: i for i, name in enumerate(header)}
        ts_i, ch_i, v_i = at["timestamp"], at["channel"], at["value"]
        f_i, s_i, a_i = at["forecast"], at["anomaly_score"], at["alarm_state"]
        for row in reader:
            channel = row[ch_i]
            s = series.get(channel)
            if s is None:
                s = series[channel] = _Series()
            s.add(
                datetime.fromisoformat(row[ts_i]).timestamp(),
                float(row[v_i]),
                _number(row[f_i]),
                _number(row[s_i]),
                row[a_i],
            )
    for s in series.values():
        s.close()
    return series


def plot_results(results: Path, png: Path, title: str) -> int:
    """Draw the results CSV of a replay to ``png``: per channel, the values with the
    forecast made for each sample and the alarm spans shaded (labelled with the first
    active rule), and under it the anomaly score. Returns the number of channels drawn.

    Raises ModuleNotFoundError without matplotlib; OSError when ``png`` cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on a device or a server
    import matplotlib.pyplot as plt

    series = _read(results)
    rows = max(len(series), 1)
    fig, axes = plt.subplots(
        rows * 2,
        1,
        figsize=(16, 4.5 * rows),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1] * rows},
    )
    for n, (channel, s) in enumerate(sorted(series.items())):
        top, bottom = axes[2 * n][0], axes[2 * n + 1][0]
        times = [datetime.fromtimestamp(t, UTC) for t in s.t]
        top.plot(times, s.value, lw=0.8, color="tab:blue", label="value")
        top.plot(times, s.forecast, lw=0.8, color="tab:orange", alpha=0.8, label="forecast")
        labelled: set[str] = set()
        for start, end, state in s.spans:
            rule = state.split("|", 1)[0]
            top.axvspan(
                datetime.fromtimestamp(start, UTC),
                datetime.fromtimestamp(end, UTC),
                color="tab:red",
                alpha=0.15,
                label=None if rule in labelled else f"alarm {rule}",
            )
            labelled.add(rule)
        top.set_ylabel(channel)
        top.legend(loc="upper left", fontsize="small")
        bottom.plot(times, s.score, lw=0.8, color="tab:purple")
        bottom.set_ylabel("score")
    axes[0][0].set_title(title)
    axes[-1][0].set_xlabel("time (UTC)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return len(series)
