"""The report's chart sections as HTML: metrics, jitter, sync and the gallery."""

from __future__ import annotations

import math

import numpy as np

from pseudo3d.qa.report import fmt
from pseudo3d.qa.report.data import (JITTER_UNITS, METRICS, Dataset, breaks, filtered_values, jitter_groups,
                                     jitter_ratios, thresholds)
from pseudo3d.qa.report.figures import jitter_figure, metric_histogram, offset_histogram, sync_scatter
from pseudo3d.qa.report.gallery import GalleryItem
from pseudo3d.qa.report.sections import esc, section, table
from pseudo3d.schemas.records import clip_label

BOUND_WORDS = {"min": "min", "max": "max", "max_abs": "max |x|"}


def _img(uri: str | None, alt: str) -> str:
    return f'<img src="{uri}" alt="{esc(alt)}">' if uri else f'<p class="empty">{esc(alt)}: nothing to plot</p>'


def metrics_section(dataset: Dataset, summary: dict) -> str:
    limits, rejected = thresholds(dataset), filtered_values(dataset)
    cards = []
    for spec in METRICS:
        values = dataset.column(spec.column)
        if not dataset.has_metric(spec.column) and spec.column not in rejected:
            continue
        threshold = limits.get(spec.column)
        uri = metric_histogram(values, spec.unit, threshold, rejected.get(spec.column))
        stats = summary["metrics"].get(spec.column, {"n": 0})
        if threshold is not None:
            beyond = int(np.count_nonzero(breaks(threshold, values)))
            rule = (f'{"QA" if dataset.qa_enabled else "QA (off)"} {BOUND_WORDS[threshold.bound]} '
                    f'{fmt.number(threshold.value)} · '
                    + (f'<span class="bad">{beyond} kept beyond</span>' if beyond else "0 kept beyond"))
            if rejected.get(spec.column):
                rule += f' · <span class="bad">{len(rejected[spec.column])} filtered</span>'
        else:
            rule = "no QA threshold"
        foot = (f"median {fmt.number(stats.get('median'))} · p05 {fmt.number(stats.get('p05'))} · "
                f"p95 {fmt.number(stats.get('p95'))} · n={stats.get('n', 0)}")
        cards.append(f'<div class="card"><h4>{esc(spec.label)} <span class="mono">{esc(spec.column)}</span></h4>'
                     f'<div class="meta">{rule}</div>{_img(uri, spec.label)}<div class="foot">{foot}</div></div>')
    lead = ("Per-clip metrics over the kept clips. Red lines are the build's QA thresholds with the rejected side "
            "shaded; red triangles are clips the filters rejected (values read from their failure rows).")
    if not dataset.qa_enabled:
        lead += " <b>The QA filters were off for this build: the lines show where they would have cut.</b>"
    body = f'<div class="grid">{"".join(cards)}</div>' if cards else '<p class="empty">No clips were kept: no metrics to show.</p>'
    return section("metrics", "Clip metrics", lead, body)


def jitter_section(dataset: Dataset, summary: dict) -> str:
    groups = jitter_groups(dataset)
    lead = ("Jitter is the RMS of the second difference along time (units per frame²), before and after "
            "Savitzky–Golay smoothing, per parameter group. Ratios well below 1 mean smoothing removed frame-to-frame noise.")
    if not groups or not dataset.n_clips:
        return section("jitter", "Jitter and smoothing", lead, '<p class="empty">No smoothed groups in the manifest.</p>')
    figure = jitter_figure(groups, [jitter_ratios(dataset, group) for group in groups])
    rows = []
    for group in groups:
        entry = summary["jitter"][group]
        ratio = entry["median_ratio"]
        reduction = f"{(1 - ratio) * 100:.0f}%" if ratio is not None else "—"
        rows.append([(f"<code>{esc(group)}</code>", ""), (esc(JITTER_UNITS.get(group, "")), "msg"),
                     (fmt.number(entry["median_raw"]), "num"), (fmt.number(entry["median_smooth"]), "num"),
                     (fmt.number(ratio, 2), "num"), (reduction, "num")])
    side = table([("Group", ""), ("Unit", ""), ("Raw", "num"), ("Smooth", "num"), ("Ratio", "num"),
                  ("Removed", "num")], rows)
    return section("jitter", "Jitter and smoothing", lead,
                   f'<div class="pair"><div>{_img(figure, "jitter ratios")}</div><div>{side}'
                   f'<p class="lead" style="margin-top:8px">Medians over kept clips; ratio = median of per-clip smooth/raw.</p></div></div>')


def sync_section(dataset: Dataset, summary: dict) -> str:
    av = summary["av_offset"]
    limit_s = av["threshold_s"]
    limit_ms = None if limit_s is None else limit_s * 1000.0
    offsets_ms = dataset.column("av_offset_s") * 1000.0
    rejected_ms = [v * 1000.0 for v in filtered_values(dataset).get("av_offset_s", [])]
    histogram = offset_histogram(offsets_ms, dataset.fps, limit_ms, rejected_ms)
    p_values = dataset.column("av_sync_p_value")
    alpha = av["significance_level"]
    with np.errstate(invalid="ignore"):
        significant = p_values <= alpha if alpha is not None else np.isfinite(p_values)
    scatter = sync_scatter(offsets_ms, dataset.column("av_sync_strength"), limit_ms,
                           dataset.column("av_offset_ci_low_s") * 1000.0, dataset.column("av_offset_ci_high_s") * 1000.0,
                           significant)
    ms, frames = av["ms"], av["frames"]
    numbers = [
        ("median offset", f"{fmt.number(ms['median'], 2)} ms", f"{fmt.number(frames['median'], 2)} frames"),
        ("p05 … p95", f"{fmt.number(ms['p05'], 2)} … {fmt.number(ms['p95'], 2)} ms", ""),
        ("significant peak", str(av["significant"]), f"p ≤ {fmt.number(alpha)}" if alpha is not None else ""),
        ("kept beyond the limit", str(av["beyond_threshold_kept"]),
         (f"±{limit_ms:g} ms, interval reaches inside" if limit_ms is not None else "no limit set")),
        ("filtered for offset", str(av["filtered"]), "clips"),
        ("filtered as unrelated", str(av["filtered_unrelated"]), "no peak with enough speech"),
        ("not measurable", str(av["not_measured"]), "no audio, silence or still lips"),
    ]
    keynums = "".join(f'<div>{esc(k)}<br><b>{esc(v)}</b> <span class="msg">{esc(d)}</span></div>' for k, v, d in numbers)
    lead = ("The audio-visual offset is the lag that best correlates the mouth's motion with the speech's onsets, "
            "less the natural lead of lips over sound (positive: the audio lags the picture); the bar is its "
            "interval and the strength is the peak correlation. A clip is filtered for offset only when its peak is "
            "significant and its whole interval lies in a shaded area, and as unrelated only when it has no "
            "significant peak despite enough speech and mouth motion (see docs/qa.md).")
    body = (f'<div class="keynums">{keynums}</div><div class="pair"><div>{_img(histogram, "AV offsets")}</div>'
            f'<div>{_img(scatter, "sync strength against offset")}</div></div>')
    return section("sync", "Audio-visual sync", lead, body)


def _view(uri: str | None, note: str, css: str) -> str:
    if uri is None:
        return f'<figure class="{css}"><div class="missing">{esc(note)}</div><figcaption>&nbsp;</figcaption></figure>'
    return f'<figure class="{css}"><img src="{uri}" alt="{esc(note)}"><figcaption>{esc(note)}</figcaption></figure>'


def _signed(value: float, digits: int = 2) -> str:
    return "—" if not math.isfinite(value) else f"{value:+.{digits}f}"


def gallery_section(items: list[GalleryItem], requested: int) -> str:
    lead = (f"Up to {requested} kept clips, spread over sources: the middle frame decoded from the source video with "
            "the landmarks drawn, the reconstruction at that frame, and the mouth opening against the audio envelope "
            "over the whole clip (both scaled to their range; the dashed line is the frame shown).")
    if not items:
        empty = "The gallery was turned off (gallery_size=0)." if requested == 0 else "No clips were kept: nothing to show."
        return section("gallery", "Gallery", lead, f'<p class="empty">{empty}</p>')
    cards = []
    for item in items:
        offset_ms = item.av_offset_s * 1000.0 if math.isfinite(item.av_offset_s) else float("nan")
        foot = (f"AV offset {_signed(item.av_offset_frames)} frames ({_signed(offset_ms, 1)} ms) · "
                f"strength {fmt.number(item.av_sync_strength, 2)} · p {fmt.number(item.av_sync_p_value, 2)} · "
                f"confidence {fmt.number(item.confidence_mean, 2)}")
        plot = f'<div class="plot"><img src="{item.plot_uri}" alt="mouth opening and audio envelope"></div>' if item.plot_uri else ""
        cards.append(
            f'<article class="shot"><header><h4>{esc(item.source_name)} · {esc(clip_label(item.key))}</h4>'
            f'<div class="meta">{item.start_s:.2f}–{item.end_s:.2f} s · frame {item.frame_index} · '
            f'<span class="mono">{esc(item.key)}</span></div></header>'
            f'<div class="views">{_view(item.frame_uri, item.frame_note, "frame")}{_view(item.mesh_uri, item.mesh_note, "mesh")}</div>'
            f'{plot}<div class="foot">{foot}</div></article>')
    return section("gallery", "Gallery", lead, f'<div class="gallery">{"".join(cards)}</div>')
