"""The report's charts: matplotlib figures (made without pyplot) returned as PNG data URIs.

Every function takes plain arrays and returns ``None`` when there is nothing to draw, so the page
can say so instead of showing an empty axis.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pseudo3d.qa.report import theme
from pseudo3d.qa.report.data import Threshold
from pseudo3d.qa.report.images import figure_data_uri

THRESHOLD_REACH = 4.0
"""A threshold further from the data than this many data spans is marked at the edge instead of
stretching the axis."""


def _figure(width_in: float, height_in: float, margins_in: tuple[float, float, float, float]):
    """A figure with one axes placed by fixed margins (left, bottom, right, top) in inches: much
    cheaper than a layout engine, and every chart of a kind lines up with its neighbours."""
    left, bottom, right, top = margins_in
    with matplotlib.rc_context(theme.FIGURE_RC):
        figure = Figure(figsize=(width_in, height_in))
        figure.subplots_adjust(left=left / width_in, bottom=bottom / height_in,
                               right=1 - right / width_in, top=1 - top / height_in)
        return figure, figure.add_subplot()


def _shade_rejected(axes, threshold: float, side: str) -> None:
    """Shade the x range a QA rule rejects (``side``: ``below`` or ``above`` the threshold)."""
    low, high = axes.get_xlim()
    if side == "below":
        axes.axvspan(low, threshold, color=theme.ALERT_LIGHT, zorder=0, lw=0)
    else:
        axes.axvspan(threshold, high, color=theme.ALERT_LIGHT, zorder=0, lw=0)
    axes.axvline(threshold, color=theme.ALERT, lw=1.4, zorder=3)
    axes.set_xlim(low, high)


def metric_histogram(values: np.ndarray, unit: str, threshold: Threshold | None,
                     rejected: list[float] | None = None) -> str | None:
    """Histogram of one per-clip metric over the kept clips, the QA threshold as a red line with
    the rejected side shaded, and clips QA filtered out (``rejected`` values) as red triangles."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    rejected = [v for v in (rejected or []) if math.isfinite(v)]
    if not values.size and not rejected:
        return None
    data = np.concatenate([values, rejected])
    low, high = float(data.min()), float(data.max())
    span = high - low
    near = threshold is not None and (span == 0 or
                                       low - THRESHOLD_REACH * span <= threshold.value <= high + THRESHOLD_REACH * span)
    if span == 0:  # one clip, or all clips equal (e.g. no interpolated frames): a nominal range
        nominal = 0.1 * abs(low) or (0.25 * abs(threshold.value) if threshold is not None else 0) or 0.05
        low, high = low - nominal, high + nominal
    # near implies a threshold; the second test says so to the type checker
    left, right = ((min(low, threshold.value), max(high, threshold.value)) if near and threshold is not None
                   else (low, high))
    if span > 0:
        bins = np.linspace(low, high, 13)
    else:
        centre, width = 0.5 * (low + high), 0.04 * (right - left)
        bins = np.array([centre - width / 2, centre + width / 2])
    figure, axes = _figure(3.0, 1.7, (0.42, 0.42, 0.16, 0.2))
    with matplotlib.rc_context(theme.FIGURE_RC):
        axes.hist(values, bins=bins, color=theme.ACCENT, edgecolor=theme.PAPER, linewidth=0.6, zorder=2)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        axes.set_ylabel("clips")
        axes.set_xlabel(unit or "value")
        pad = 0.06 * (right - left)
        axes.set_xlim(left - pad, right + pad)
        if threshold is not None and near:
            _shade_rejected(axes, threshold.value, "below" if threshold.bound == "min" else "above")
        elif threshold is not None:
            at_left = threshold.value < low
            axes.annotate(f"{'← ' if at_left else ''}threshold {threshold.value:g} off scale{'' if at_left else ' →'}",
                          xy=(0.0 if at_left else 1.0, 1.03), xycoords="axes fraction", color=theme.ALERT,
                          ha="left" if at_left else "right", va="bottom", fontsize=7.5)
        if rejected:
            # No legend: the card's caption names them, and a legend would sit on the bars.
            axes.plot(rejected, np.zeros(len(rejected)), linestyle="none", marker="^", markersize=7,
                      color=theme.ALERT, clip_on=False, zorder=4)
    return figure_data_uri(figure)


def jitter_figure(groups: list[str], ratios: list[np.ndarray]) -> str | None:
    """One row per smoothed group: each clip's smooth/raw jitter ratio as a dot, the median as a
    bar with its value; 1 = smoothing changed nothing."""
    rows = [(group, np.asarray(r, np.float64)) for group, r in zip(groups, ratios) if np.size(r)]
    if not rows:
        return None
    label_in = 0.25 + 0.065 * max(len(group) for group, _ in rows)  # room for the group names
    figure, axes = _figure(5.4, 0.36 * len(rows) + 0.55, (label_in, 0.4, 0.12, 0.1))
    rng = np.random.default_rng(0)
    with matplotlib.rc_context(theme.FIGURE_RC):
        top = max(1.1, max(float(r.max()) for _, r in rows) * 1.05)
        for index, (group, r) in enumerate(rows):
            y = len(rows) - 1 - index
            median = float(np.median(r))
            axes.barh(y, median, height=0.62, color=theme.ACCENT_LIGHT, zorder=1)
            axes.scatter(r, y + rng.uniform(-0.18, 0.18, r.size), s=11, color=theme.ACCENT, zorder=3, linewidths=0)
            axes.text(float(r.max()) + 0.02 * top, y, f"×{median:.2f}", va="center", fontsize=7.5,
                      color=theme.INK, fontweight="bold")
        axes.axvline(1.0, color=theme.MUTED, lw=1.0, ls="--", zorder=2)
        axes.text(0.99, len(rows) - 0.5, "unchanged", color=theme.MUTED, fontsize=7, va="center", ha="right")
        axes.set_yticks(range(len(rows)), [group for group, _ in reversed(rows)])
        axes.set_xlim(0, top)
        axes.set_ylim(-0.6, len(rows) - 0.3)
        axes.grid(axis="y", visible=False)
        axes.grid(axis="x", visible=True)
        axes.set_xlabel("jitter after smoothing / before (per clip)")
    return figure_data_uri(figure)


def offset_histogram(offsets_ms: np.ndarray, fps: float, limit_ms: float | None,
                     rejected_ms: list[float] | None = None) -> str | None:
    """Histogram of AV offsets in ms (frames on the top axis), the ±limit band's outside shaded."""
    offsets = np.asarray(offsets_ms, np.float64)
    offsets = offsets[np.isfinite(offsets)]
    rejected = [v for v in (rejected_ms or []) if math.isfinite(v)]
    if not offsets.size and not rejected:
        return None
    figure, axes = _figure(4.5, 2.2, (0.56, 0.42, 0.12, 0.42))
    with matplotlib.rc_context(theme.FIGURE_RC):
        data = np.concatenate([offsets, rejected])
        reach = max(float(np.abs(data).max()), limit_ms or 0.0, 1000.0 / fps if fps > 0 else 40.0) * 1.15
        bins = np.linspace(-reach, reach, 33)
        axes.hist(offsets, bins=bins, color=theme.ACCENT, edgecolor=theme.PAPER, linewidth=0.6, zorder=2)
        axes.set_xlim(-reach, reach)
        if limit_ms is not None:
            axes.axvspan(-reach, -limit_ms, color=theme.ALERT_LIGHT, lw=0, zorder=0)
            axes.axvspan(limit_ms, reach, color=theme.ALERT_LIGHT, lw=0, zorder=0, label=f"beyond ±{limit_ms:g} ms")
            for x in (-limit_ms, limit_ms):
                axes.axvline(x, color=theme.ALERT, lw=1.4, zorder=3)
        if rejected:
            axes.plot(rejected, np.zeros(len(rejected)), linestyle="none", marker="^", markersize=7,
                      color=theme.ALERT, clip_on=False, zorder=4, label="filtered (|offset|)")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        axes.set_xlabel("AV offset, ms (positive: audio lags the picture)")
        axes.set_ylabel("clips")
        if fps > 0:
            top = axes.secondary_xaxis("top", functions=(lambda ms: ms * fps / 1000.0, lambda f: f * 1000.0 / fps))
            top.set_xlabel("frames", color=theme.MUTED)
        if limit_ms is not None or rejected:
            axes.legend(loc="upper left", frameon=True, framealpha=0.92, edgecolor=theme.RULE)
    return figure_data_uri(figure)


SCATTER_MAX_CLIPS = 5000
"""Clips drawn in a scatter at most; more are drawn as an even sample (:func:`even_sample`)."""


def even_sample(mask: np.ndarray, limit: int) -> np.ndarray:
    """(n,) bool: ``mask`` where it has at most ``limit`` True entries; otherwise ``limit`` of them,
    evenly spaced in order, the first and the last included."""
    chosen = np.flatnonzero(mask)
    if chosen.size <= limit:
        return np.asarray(mask, bool)
    sample = np.zeros(len(mask), bool)
    sample[chosen[np.linspace(0, chosen.size - 1, limit).round().astype(int)]] = True
    return sample


def sync_scatter(offsets_ms: np.ndarray, strengths: np.ndarray, limit_ms: float | None,
                 low_ms: np.ndarray | None = None, high_ms: np.ndarray | None = None,
                 significant: np.ndarray | None = None) -> str | None:
    """Sync strength against AV offset per clip: each offset's interval as a horizontal bar,
    filled dots where the peak is significant, hollow where it is not; outside ±limit shaded.
    Of more than :data:`SCATTER_MAX_CLIPS` measured clips, an even sample is drawn and the
    figure says so."""
    offsets, strengths = np.asarray(offsets_ms, np.float64), np.asarray(strengths, np.float64)
    ok = np.isfinite(offsets) & np.isfinite(strengths)
    if not ok.any():
        return None
    measured = int(ok.sum())
    low = np.asarray(low_ms, np.float64) if low_ms is not None else offsets
    high = np.asarray(high_ms, np.float64) if high_ms is not None else offsets
    sure = np.asarray(significant, bool) if significant is not None else np.ones_like(ok)
    figure, axes = _figure(4.5, 2.2, (0.56, 0.42, 0.12, 0.12))
    with matplotlib.rc_context(theme.FIGURE_RC):
        # the axes hold every measured clip, the extremes included; the marks are a sample of them
        spans = np.concatenate([np.abs(offsets[ok]), np.abs(low[ok & np.isfinite(low)]), np.abs(high[ok & np.isfinite(high)])])
        reach = max(float(spans.max()), limit_ms or 0.0) * 1.15 or 1.0
        axes.set_xlim(-reach, reach)
        axes.set_ylim(min(0.0, float(strengths[ok].min()) - 0.05), 1.02)
        ok = even_sample(ok, SCATTER_MAX_CLIPS)  # the figure costs the same at any size
        if limit_ms is not None:
            axes.axvspan(-reach, -limit_ms, color=theme.ALERT_LIGHT, lw=0, zorder=0)
            axes.axvspan(limit_ms, reach, color=theme.ALERT_LIGHT, lw=0, zorder=0)
            for x in (-limit_ms, limit_ms):
                axes.axvline(x, color=theme.ALERT, lw=1.2, zorder=2)
        bars = ok & np.isfinite(low) & np.isfinite(high)
        axes.hlines(strengths[bars], low[bars], high[bars], color=theme.ACCENT_LIGHT, lw=1.0, zorder=2)
        axes.scatter(offsets[ok & sure], strengths[ok & sure], s=22, color=theme.ACCENT, edgecolors=theme.PAPER,
                     linewidths=0.6, zorder=3, label="significant peak")
        if (ok & ~sure).any():
            axes.scatter(offsets[ok & ~sure], strengths[ok & ~sure], s=22, facecolors=theme.PAPER,
                         edgecolors=theme.ACCENT, linewidths=1.0, zorder=3, label="no significant peak")
            axes.legend(loc="lower left", frameon=True, framealpha=0.92, edgecolor=theme.RULE)
        axes.grid(axis="x", visible=True)
        axes.set_xlabel("AV offset and its interval, ms")
        axes.set_ylabel("sync strength")
        if measured > SCATTER_MAX_CLIPS:
            axes.set_title(f"an even sample: {SCATTER_MAX_CLIPS:,} of {measured:,} clips", fontsize="small",
                           color=theme.MUTED, loc="right")
    return figure_data_uri(figure)


def _unit_range(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return np.zeros_like(values)
    low, high = np.percentile(finite, [2, 98])
    return np.clip((values - low) / (high - low), 0, 1.05) if high > low else np.zeros_like(values)


def mouth_audio_plot(mouth: np.ndarray, envelope: np.ndarray, fps: float, marked_frame: int) -> str | None:
    """Mouth opening (line) over the audio envelope (area), each scaled to its 2nd–98th
    percentile, against clip time in seconds; a dashed line marks the frame shown."""
    mouth, envelope = np.asarray(mouth, np.float64), np.asarray(envelope, np.float64)
    if not mouth.size or fps <= 0:
        return None
    figure, axes = _figure(5.2, 1.25, (0.12, 0.34, 0.12, 0.24))
    with matplotlib.rc_context(theme.FIGURE_RC):
        time = np.arange(mouth.size) / fps
        if envelope.size == mouth.size:
            axes.fill_between(time, 0, _unit_range(envelope), color=theme.AUDIO, alpha=0.35, lw=0,
                              label="audio envelope")
        axes.plot(time, _unit_range(mouth), color=theme.ACCENT, lw=1.2, label="mouth opening")
        axes.axvline(marked_frame / fps, color=theme.INK, lw=0.9, ls=(0, (3, 2)))
        axes.set_xlim(0, time[-1] if time.size > 1 else 1)
        axes.set_ylim(0, 1.12)
        axes.set_yticks([])
        axes.spines["left"].set_visible(False)
        axes.grid(visible=False)
        axes.set_xlabel("seconds into the clip", labelpad=1)
        axes.legend(loc="upper left", ncols=2, bbox_to_anchor=(0, 1.28), borderaxespad=0, handlelength=1.4)
    return figure_data_uri(figure)
