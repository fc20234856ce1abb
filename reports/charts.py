"""Report charts: matplotlib figures rendered to SVG strings that are inlined in the page.

Figures are built with `matplotlib.figure.Figure` on an Agg canvas, never through pyplot,
so rendering a report changes no global backend state. Text stays text (`svg.fonttype: none`,
DejaVu Sans then the browser's sans-serif): selectable and searchable in the page, half the
bytes of glyph outlines and a sixth less drawing time. Each SVG's ids get a per-chart prefix,
because many SVGs share one HTML document's id namespace (glyph and clip-path ids would
otherwise collide). Labels are escaped by matplotlib's SVG writer; mathtext is off, so a
`$` in a model name is just a character.
"""
from __future__ import annotations

import io
import math
import os
import re
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from reports.collect import Curve, ForgettingMatrix, LossCurves, MemoryBreakdown

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]
MAX_POINTS = 2000   # a training log longer than this is thinned for drawing

RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "harness-report",     # deterministic ids: same run dir, same bytes
    "text.parse_math": False,
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 7.5,
    "path.simplify": True,
}


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@contextmanager
def _figure(width: float, height: float, ncols: int = 1, fitted: bool = False) -> Iterator[tuple[Figure, list]]:
    """A figure and its row of axes. `fitted`: margins from the text the axes carry (`_fit_margins`,
    at savefig), for charts whose every text is one line on a side of an axes (the metric and loss
    charts, most of a report's charts); else matplotlib's constrained layout, which measures every
    text twice and was half of a report's rendering time."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height), layout=None if fitted else "constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, ncols, squeeze=False)[0]
        yield fig, list(axes)


BORDER = 5.0   # points of white around a fitted chart's outermost text


def _fit_margins(fig: Figure) -> None:
    """Margins (and the gap between axes) just wide enough for each side's tick labels and axis
    label, and each title above its axes (above a secondary top axis when there is one), placed
    once: the text sizes come from the renderer's font metrics of the labels the axes will draw."""
    renderer = fig.canvas.get_renderer()
    points = fig.dpi / 72.0                     # renderer pixels per point
    width, height = (v * fig.dpi for v in fig.get_size_inches())

    def text_size(texts, size) -> tuple[float, float]:   # widest, tallest of these strings, pixels
        prop = FontProperties(size=size)
        sizes = [renderer.get_text_width_height_descent(t, prop, ismath=False)[:2] for t in texts if t]
        return (max(w for w, _ in sizes), max(h for _, h in sizes)) if sizes else (0.0, 0.0)

    def extent(axis) -> float:   # pixels from the spine to the axis label's far edge
        ticks = axis.get_major_formatter().format_ticks(axis.get_majorticklocs())
        size = matplotlib.rcParams["xtick.labelsize" if axis.axis_name == "x" else "ytick.labelsize"]
        w, h = text_size(ticks, size)
        label = text_size([axis.get_label_text()], matplotlib.rcParams["axes.labelsize"])[1]
        major = axis.majorTicks[0] if axis.majorTicks else None
        tick = (major.get_tick_padding() + major.get_pad()) if major is not None else 7.0
        return (w if axis.axis_name == "y" else h) + (tick + axis.labelpad) * points + label

    main = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
    left = max(extent(ax.yaxis) for ax in main)
    bottom = max(extent(ax.xaxis) for ax in main)
    top_axes = [max((extent(child.xaxis) for child in ax.child_axes), default=0.0) for ax in main]
    titles = max(text_size([ax.get_title()], matplotlib.rcParams["axes.titlesize"])[1] for ax in main)
    top = max(top_axes) + titles + matplotlib.rcParams["axes.titlepad"] * points
    border = BORDER * points
    right = border + text_size(["0000"], matplotlib.rcParams["xtick.labelsize"])[0] / 2   # the last tick's half
    fig.subplots_adjust(left=(left + border) / width, right=1 - right / width,
                        bottom=(bottom + border) / height, top=1 - (top + border) / height,
                        wspace=(left + right) / ((width - left - right - border) / len(main)))
    for ax, over in zip(main, top_axes):      # the title above any top axis: not searched for at draw time
        box = ax.get_position()
        ax.set_title(ax.get_title(), y=1 + over / (box.height * height))


def to_svg(fig: Figure, prefix: str) -> str:
    """The figure as an inline <svg> element with ids unique to this chart."""
    buf = io.StringIO()
    with matplotlib.rc_context(RC):
        if fig.get_layout_engine() is None:
            _fit_margins(fig)
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)           # matplotlib escapes `--` inside
    text = re.sub(r'(\bid="|href="#|url\(#)', lambda m: m.group(1) + prefix, text)
    text = re.sub(r"\n\s*", "\n", text)
    return text.replace("<svg ", '<svg role="img" ', 1)


class Chart:
    """A chart to be drawn by a `ChartBatch`: in the page template it is its SVG (`__html__`), and
    false when its function drew nothing (a loss chart without losses)."""

    def __init__(self, fn: Callable[..., Optional[str]], args: tuple):
        self.fn, self.args, self.svg = fn, args, None

    def __html__(self) -> str:
        return self.svg or ""

    def __bool__(self) -> bool:
        return bool(self.svg)


class ChartBatch:
    """A page's charts, drawn together: `add` them while the page's data is gathered, `draw` once
    before the template renders. Drawing is most of a report's time (matplotlib, 30-80 ms a chart),
    so with several charts and CPUs the batch is drawn in forked worker processes, one chart per
    task, each chart's bytes the same as drawn here. Serial instead where forking is not safe: a
    process with threads (torch's, inside `train-and-grade`), or a platform without fork."""

    PARALLEL_FROM = 4    # charts; fewer are drawn here (a worker's start is ~10 ms)

    def __init__(self):
        self.charts: list[Chart] = []

    def add(self, fn: Callable[..., Optional[str]], *args) -> Chart:
        chart = Chart(fn, args)
        self.charts.append(chart)
        return chart

    def draw(self) -> None:
        todo = [c for c in self.charts if c.svg is None]
        workers = min(len(todo), _cpus())
        svgs = None
        if workers > 1 and len(todo) >= self.PARALLEL_FROM and _fork_is_safe():
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            from concurrent.futures.process import BrokenProcessPool

            try:
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                    svgs = list(pool.map(_draw, [(c.fn, c.args) for c in todo]))
            except (OSError, BrokenProcessPool):   # no process to spare (a container's limit): drawn here
                svgs = None
        if svgs is None:
            svgs = [_draw((c.fn, c.args)) for c in todo]
        for chart, svg in zip(todo, svgs):
            chart.svg = svg


def _draw(job: tuple) -> Optional[str]:
    fn, args = job
    return fn(*args)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def _fork_is_safe() -> bool:
    """A fork copies only the calling thread: safe in a process with no other threads, Python's or a
    native library's (torch starts OpenMP and its own pools: never forked from once imported)."""
    import multiprocessing
    import sys
    import threading

    return ("fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
            and "torch" not in sys.modules)


def _array(values: Sequence[Optional[float]]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


# --------------------------------------------------------------------------- losses
def loss_chart(curves: list[LossCurves], prefix: str) -> Optional[str]:
    """Train loss against step, and per-task validation loss at each graded epoch's step."""
    has_train = any(c.train_steps for c in curves)
    has_val = any(len(steps) > 1 for c in curves for steps, _ in c.val.values())
    if not has_train and not has_val:
        return None
    multi = len(curves) > 1
    tasks: list[str] = []
    for c in curves:
        tasks += [t for t in c.val if t not in tasks]
    with _figure(9.6 if has_train and has_val else 5.6, 3.1, ncols=int(has_train) + int(has_val),
                 fitted=True) as (fig, axes):
        ax_t = axes[0] if has_train else None
        ax_v = axes[-1] if has_val else None
        for i, c in enumerate(curves):
            if ax_t is not None and c.train_steps:
                step = max(1, math.ceil(len(c.train_steps) / MAX_POINTS))
                ax_t.plot(c.train_steps[::step], c.train_loss[::step], color=colour(i), lw=1.2, label=c.label)
            if ax_v is not None:
                for task, (steps, losses) in c.val.items():
                    j = tasks.index(task)
                    ax_v.plot(steps, losses, color=colour(i) if multi else colour(j + 1),
                              marker=MARKERS[j % len(MARKERS)], ms=4, lw=1.3,
                              ls=["-", "--", ":", "-."][j % 4] if multi else "-",
                              label=f"{c.label} · {task}" if multi else task)
        if ax_t is not None:
            ax_t.set_title("training loss")
            ax_t.set_xlabel("step")
            ax_t.set_ylabel("loss")
            if multi:
                ax_t.legend(loc="upper right")
            _epoch_axis(ax_t, curves)
        if ax_v is not None:
            ax_v.set_title("validation loss per task (at each graded epoch)")
            ax_v.set_xlabel("step")
            ax_v.set_ylabel("NLL per token")
            ax_v.legend(loc="upper right", ncol=1 if len(tasks) * len(curves) < 6 else 2)
            _epoch_axis(ax_v, curves)
        return to_svg(fig, prefix)


def _epoch_axis(ax, curves: list[LossCurves]) -> None:
    """A top axis in epochs, when all series agree on steps per epoch."""
    spe = {c.steps_per_epoch for c in curves}
    if len(spe) != 1 or not next(iter(spe)):
        return
    k = float(next(iter(spe)))
    top = ax.secondary_xaxis("top", functions=(lambda s: s / k, lambda e: e * k))
    top.set_xlabel("epoch")
    top.xaxis.set_major_locator(MaxNLocator(integer=True))


# --------------------------------------------------------------------------- metrics
def metric_chart(task: str, metric: str, higher: bool, curves: list[Curve], prefix: str) -> str:
    """One metric of one task against epoch: a line per series, CI band, best and inflection marks.
    When no series has more than one graded epoch (`harness grade`), a point per series instead."""
    if all(len(c.epochs) <= 1 for c in curves):
        return point_chart(task, metric, higher, curves, prefix)
    with _figure(4.3, 2.8, fitted=True) as (fig, (ax,)):
        for i, c in enumerate(curves):
            x, y = np.array(c.epochs, dtype=float), _array(c.scores)
            ax.plot(x, y, color=colour(i), marker="o", ms=3.5, lw=1.5, label=c.label)
            lo, hi = _array(c.lo), _array(c.hi)
            if np.isfinite(lo).any() and np.isfinite(hi).any():
                ax.fill_between(x, lo, hi, color=colour(i), alpha=0.17 if len(curves) == 1 else 0.08, lw=0)
            if c.best_epoch in c.epochs and np.isfinite(y[c.epochs.index(c.best_epoch)]):
                ax.plot([c.best_epoch], [y[c.epochs.index(c.best_epoch)]], ls="none", marker="*", ms=12,
                        color=colour(i), mec="black", mew=0.6, zorder=5)
            if c.inflection_epoch is not None:
                ax.axvline(c.inflection_epoch, color=colour(i), ls=":", lw=1.3)
        ax.set_title(f"{task} · {metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric} ({'higher' if higher else 'lower'} is better)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(curves) > 1:   # markers and band are explained once, above the grid
            ax.legend(loc="best")
        return to_svg(fig, prefix)


def point_chart(task: str, metric: str, higher: bool, curves: list[Curve], prefix: str) -> str:
    """One graded epoch per series (models graded side by side): the score of each as a point
    with its bootstrap 95% CI as an error bar, one x position per series; ★ on the best."""
    ys = [c.scores[0] if c.scores else None for c in curves]
    valid = [(y, i) for i, y in enumerate(ys) if y is not None]
    best = (max if higher else min)(valid, key=lambda v: v[0])[1] if len(valid) > 1 else None
    with _figure(max(3.0, 1.7 + 0.75 * len(curves)), 2.8) as (fig, (ax,)):
        for i, (c, y) in enumerate(zip(curves, ys)):
            if y is None:
                continue
            lo, hi = c.lo[0], c.hi[0]
            if lo is not None and hi is not None:
                ax.errorbar([i], [y], yerr=[[max(y - lo, 0.0)], [max(hi - y, 0.0)]], fmt="o", color=colour(i),
                            ms=5, capsize=4, lw=1.5)
            else:
                ax.plot([i], [y], ls="none", marker="o", ms=5, color=colour(i))
            if i == best:
                ax.plot([i], [y], ls="none", marker="*", ms=12, color=colour(i), mec="black", mew=0.6, zorder=5)
        long = sum(len(c.label) for c in curves) > 36
        ax.set_xticks(range(len(curves)), [c.label for c in curves], rotation=20 if long else 0,
                      ha="right" if long else "center")
        ax.set_xlim(-0.6, len(curves) - 0.4)
        ax.grid(axis="x", visible=False)
        epochs = {c.epochs[0] for c in curves if c.epochs}
        ax.set_title(f"{task} · {metric}" + (f" (epoch {epochs.pop()})" if len(epochs) == 1 and 0 not in epochs
                                             else ""))
        ax.set_ylabel(f"{metric} ({'higher' if higher else 'lower'} is better)")
        return to_svg(fig, prefix)


# --------------------------------------------------------------------------- forgetting
def forgetting_chart(m: ForgettingMatrix, prefix: str) -> str:
    """Heatmap task/metric x epoch of the change vs epoch 0; green better, red worse."""
    gain = _array([v for row in m.gain for v in row]).reshape(len(m.rows), len(m.epochs))
    scale = np.nanmax(np.abs(gain), axis=1, initial=0.0, where=np.isfinite(gain))
    scaled = gain / np.where(scale > 0, scale, 1.0)[:, None]
    width = min(10.0, 2.6 + 0.85 * len(m.epochs))
    with _figure(width, 0.9 + 0.34 * len(m.rows)) as (fig, (ax,)):
        ax.imshow(np.ma.masked_invalid(scaled), cmap="RdYlGn", vmin=-1.15, vmax=1.15, aspect="auto")
        ax.grid(False)
        for i in range(len(m.rows)):
            for j in range(len(m.epochs)):
                d = m.delta[i][j]
                ax.text(j, i, "–" if d is None else f"{d:+.2f}", ha="center", va="center", fontsize=7.5,
                        fontweight="bold" if m.forgotten[i][j] else "normal")
                if m.forgotten[i][j]:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="black", lw=2.0))
        ax.set_xticks(range(len(m.epochs)), [f"epoch {e}" for e in m.epochs])
        ax.set_yticks(range(len(m.rows)), [r + (" *" if c else "") for r, c in zip(m.rows, m.computed)])
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title("change vs epoch 0" + (" (outlined: forgotten)" if any(map(any, m.forgotten)) else ""))
        return to_svg(fig, prefix)


# --------------------------------------------------------------------------- drift
def drift_chart(section: dict, prefix: str) -> Optional[str]:
    """One panel per drift signal (results.json diagnostics.drift) against epoch: the value with its
    interval, the warn and fail thresholds, significant epochs filled."""
    rows = [(name, row) for name, row in (section.get("signals") or {}).items() if row.get("epochs")]
    if not rows:
        return None
    with _figure(3.1 * len(rows) + 0.4, 2.6, ncols=len(rows)) as (fig, axes):
        for ax, (name, row) in zip(axes, rows):
            eps = sorted(row["epochs"], key=int)
            x = np.array([0] + [int(e) for e in eps], dtype=float)
            cells = [row["epochs"][e] for e in eps]
            y = _array([0.0] + [c["value"] for c in cells])
            lo = _array([0.0] + [(c["ci"] or [None])[0] for c in cells])
            hi = _array([0.0] + [(c["ci"] or [None, None])[1] for c in cells])
            ax.plot(x, y, color=colour(0), marker="o", ms=3.5, lw=1.5)
            if np.isfinite(lo).any():
                ax.fill_between(x, lo, hi, color=colour(0), alpha=0.17, lw=0)
            sig = [i + 1 for i, c in enumerate(cells) if c.get("significant")]
            ax.plot(x[sig], y[sig], ls="none", marker="o", ms=7, mfc=colour(3), mec="black", mew=0.6, zorder=5)
            ax.axhline(row["warn"], color="#b58900", ls="--", lw=1)
            ax.axhline(row["fail"], color="#cb4b16", ls=":", lw=1.2)
            ax.set_title({"kl": "KL(base ‖ epoch), probe", "kl_prompts": "KL(base ‖ epoch), task prompts",
                          "nll": "NLL drift, probe (worst group)"}.get(name, name), fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel(section.get("unit", ""))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return to_svg(fig, prefix)


# --------------------------------------------------------------------------- memory
def memory_chart(mb: MemoryBreakdown, prefix: str) -> str:
    """Estimate by term, measured peak(s), the 17.5 bytes/param rule, and the budget."""
    bars: list[tuple[str, list[tuple[str, float]]]] = []
    if mb.estimate:
        bars.append(("estimate", list(mb.estimate.items())))
    if mb.measured and set(mb.measured) & set(mb.estimate):
        bars.append(("measured", list(mb.measured.items())))
    else:
        bars += [(f"measured: {k}", [("measured", v)]) for k, v in mb.measured.items()]
    if mb.folk_rule is not None:
        bars.append(("17.5 B/param rule" + (" (from parameter count)" if mb.folk_rule_computed else ""),
                     [("17.5 B/param", mb.folk_rule)]))
    biggest = max([sum(v for _, v in parts) for _, parts in bars] + [mb.budget or 0.0, 1.0])
    unit, div = ("GiB", 2.0 ** 30) if biggest >= 2 ** 30 else ("MiB", 2.0 ** 20)
    terms = list(dict.fromkeys(t for _, parts in bars for t, _ in parts))
    fixed = {"measured": "#444444", "17.5 B/param": "#bbbbbb"}
    term_colour = {t: fixed.get(t, colour(i)) for i, t in enumerate(t for t in terms if t not in fixed)}
    term_colour.update({t: c for t, c in fixed.items() if t in terms})
    with _figure(7.2, 1.3 + 0.42 * len(bars)) as (fig, (ax,)):
        for row, (label, parts) in enumerate(bars):
            left = 0.0
            for term, value in parts:
                ax.barh(row, value / div, left=left, color=term_colour[term], height=0.6,
                        hatch="//" if term == "17.5 B/param" else None, edgecolor="white", lw=0.5)
                left += value / div
            ax.text(left, row, f"  {left:,.2f} {unit}", va="center", fontsize=7.5)
        handles = [Patch(color=term_colour[t], label=t) for t in terms if t not in fixed]
        if mb.budget is not None:
            ax.axvline(mb.budget / div, color="#d62728", ls="--", lw=1.2)
            handles.append(Line2D([], [], color="#d62728", ls="--", lw=1.2,
                                  label=f"budget {mb.budget / div:,.2f} {unit}"))
        ax.set_yticks(range(len(bars)), [b[0] for b in bars])
        ax.invert_yaxis()
        ax.set_xlabel(unit)
        ax.set_xlim(0, biggest / div * 1.18)
        ax.grid(axis="y", visible=False)
        ax.set_axisbelow(True)
        ax.set_title("peak memory: estimate by term vs measured vs rule of thumb")
        if handles:
            fig.legend(handles=handles, loc="outside lower center", ncol=min(6, len(handles)))
        return to_svg(fig, prefix)
