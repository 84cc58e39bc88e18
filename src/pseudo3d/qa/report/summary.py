"""The one summary of a dataset: a JSON-able dict for dashboards (:func:`qa_summary`), its
compact terminal rendering (:func:`format_summary`, printed by ``pseudo3d qa``), and the longer
text of ``pseudo3d inspect`` (:func:`describe_dataset`: the same, then the failure rows and the
clips per source), beside ``inspect``'s text of a single shard (:func:`describe_shard`).

Hours are decimal hours (as in ``dataset.json``); AV offsets are given in frames and in
milliseconds. Non-finite numbers become None so the dict serialises with ``json.dumps`` as is.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

import numpy as np

from pseudo3d.qa.report import fmt
from pseudo3d.qa.report.data import (METRICS, Dataset, breaks, failure_groups, filtered_values, funnel,
                                     jitter_groups, jitter_ratios, load_dataset, thresholds)
from pseudo3d.schemas.commits import dataset_of, find_shard, legacy_commits, list_markers
from pseudo3d.schemas.shard_reader import iter_samples
from pseudo3d.storage import Storage

REPORT_NAME = "qa/report.html"
"""Where the report goes, relative to the dataset directory."""
GOOD_KEPT_SHARE, GOOD_FAILED_SHARE = 0.6, 0.1
"""A build "looks good" when at least this share of the input time was kept and at most this
share of the inputs failed."""
POOR_KEPT_SHARE = 0.3
"""Below this share of the input time kept, the yield is "poor"; in between, "review"."""


def _finite(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _quantiles(values: np.ndarray) -> dict:
    values = values[np.isfinite(values)]
    if not values.size:
        return {"n": 0, "median": None, "p05": None, "p95": None}
    p05, median, p95 = np.percentile(values, [5, 50, 95])
    return {"n": int(values.size), "median": float(median), "p05": float(p05), "p95": float(p95)}


def verdict(dataset: Dataset, kept_s: float, input_s: float) -> dict:
    """``{"level": "good"|"review"|"poor", "text": one sentence}`` from the yield and failures."""
    inputs, failed = dataset.n_sources, int((dataset.source_status() == "failed").sum())
    if not dataset.n_clips:
        return {"level": "poor", "text": f"No clips were kept from {fmt.plural(inputs, 'input')}; every input failed (see the failure rows)."}
    kept_share = kept_s / input_s if input_s > 0 else 1.0
    failed_share = failed / inputs if inputs else 0.0
    if kept_share >= GOOD_KEPT_SHARE and failed_share <= GOOD_FAILED_SHARE:
        level = "good"
    else:
        level = "review" if kept_share >= POOR_KEPT_SHARE else "poor"
    text = f"{fmt.percent(kept_s, input_s)} of the input time was kept as {fmt.plural(dataset.n_clips, 'clip')}"
    if failed:
        top = failure_groups(dataset, by=("error",))[0]
        text += f"; {failed} of {fmt.plural(inputs, 'input')} failed (most common failure: {top.error}, {top.count}×)."
    else:
        text += f"; all {fmt.plural(inputs, 'input')} produced clips."
    return {"level": level, "text": text}


def _av_offset(dataset: Dataset) -> dict:
    frames, seconds = dataset.column("av_offset_frames"), dataset.column("av_offset_s")
    threshold = thresholds(dataset).get("av_offset_s")
    limit = threshold.value if threshold else None
    beyond = int(np.count_nonzero(np.abs(seconds[np.isfinite(seconds)]) > limit)) if limit is not None else 0
    alpha = dataset.qa_config.get("max_av_sync_p_value")
    p_values = dataset.column("av_sync_p_value")
    ms = _quantiles(seconds * 1000.0)
    return {
        "frames": _quantiles(frames),
        "ms": ms,
        "threshold_s": limit,
        "beyond_threshold_kept": beyond,
        "filtered": len(filtered_values(dataset).get("av_offset_s", [])),
        "not_measured": int(np.count_nonzero(~np.isfinite(seconds))),
        "significance_level": None if alpha is None else float(alpha),
        "significant": int(np.count_nonzero(p_values[np.isfinite(p_values)] <= alpha)) if alpha is not None else 0,
        "filtered_unrelated": len(filtered_values(dataset).get("av_sync_p_value", [])),
    }


def summarize(dataset: Dataset) -> dict:
    """The summary dict of a loaded dataset (see :func:`qa_summary`); computed once per dataset
    (the page and the printed summary share it), so callers must not change it."""
    return dataset.memo("summary", lambda: _summarize(dataset))


def _summarize(dataset: Dataset) -> dict:
    steps = {step.key: step for step in funnel(dataset)}
    counts = dataset.card.get("counts", {})
    stage_groups = failure_groups(dataset, by=("stage",))
    error_groups = failure_groups(dataset, by=("error",))
    limits = thresholds(dataset)
    metrics = {}
    for spec in METRICS:
        if dataset.has_column(spec.column):
            values = dataset.column(spec.column)
            entry = _quantiles(values)
            if spec.column in limits:
                entry["threshold"] = limits[spec.column].value
                entry["bound"] = limits[spec.column].bound
                entry["beyond_threshold_kept"] = int(np.count_nonzero(breaks(limits[spec.column], values)))
            metrics[spec.column] = entry
    jitter = {}
    for group in jitter_groups(dataset):
        ratios = jitter_ratios(dataset, group)
        jitter[group] = {
            "median_raw": _finite(np.nanmedian(dataset.column(f"jitter_{group}_raw"))) if dataset.n_clips else None,
            "median_smooth": _finite(np.nanmedian(dataset.column(f"jitter_{group}_smooth"))) if dataset.n_clips else None,
            "median_ratio": float(np.median(ratios)) if ratios.size else None,
        }
    kept_s, input_s = steps["kept"].seconds, steps["inputs"].seconds
    return {
        "dataset": dataset.storage.url,
        "backend": dataset.backend,
        "fps": _finite(dataset.fps),
        "built_at": dataset.card.get("built_at"),
        "counts": {
            "inputs": dataset.n_sources,
            "ok": int((dataset.source_status() == "ok").sum()),
            "failed": int((dataset.source_status() == "failed").sum()),
            "probed": steps["probed"].count,
            "clips_found": steps["clips"].count,
            "clips": dataset.n_clips,
            "frames": int(np.nansum(dataset.column("n_frames"))) if dataset.n_clips else 0,
            "shards": counts.get("shards"),
            "failures": dataset.n_failures,
        },
        "hours": {"input": input_s / 3600.0, "probed": steps["probed"].seconds / 3600.0,
                  "clips": steps["clips"].seconds / 3600.0, "kept": kept_s / 3600.0},
        "unknown_duration_inputs": steps["inputs"].n_unknown,
        "kept_fraction": kept_s / input_s if input_s > 0 else None,
        "verdict": verdict(dataset, kept_s, input_s),
        "failures_by_stage": {g.stage: {"count": g.count, "hours": g.seconds / 3600.0, "unknown_duration": g.n_unknown}
                              for g in stage_groups},
        "failures_by_error": {g.error: {"count": g.count, "hours": g.seconds / 3600.0, "unknown_duration": g.n_unknown}
                              for g in error_groups},
        "metrics": metrics,
        "jitter": jitter,
        "av_offset": _av_offset(dataset),
        "qa_enabled": dataset.qa_enabled,
        "thresholds": {key: value for key, value in dataset.qa_config.items() if key != "enabled"},
        "report": dataset.storage.url_of(REPORT_NAME),
    }


def qa_summary(dataset_dir: str | Path | Storage | Dataset) -> dict:
    """A JSON-able summary of the dataset at ``dataset_dir`` (a directory, a URL or a :class:`Storage`).

    Keys: ``dataset``, ``backend``, ``fps``, ``built_at``; ``counts`` (inputs, ok, failed, probed,
    clips_found, clips = kept, frames, shards, failures); ``hours`` at each funnel step (input,
    probed, clips = found, kept); ``unknown_duration_inputs``; ``kept_fraction`` (of the input
    time); ``verdict`` (level, text); ``failures_by_stage`` and ``failures_by_error`` (count,
    hours lost, rows of unknown cost); ``metrics`` (per manifest metric: n, median, p05, p95, and
    threshold, bound, beyond_threshold_kept where a QA rule applies); ``jitter`` (per group: median
    raw, median smooth, median per-clip ratio); ``av_offset`` (quantiles in frames and ms,
    threshold_s, beyond_threshold_kept, filtered, not_measured, significance_level, significant =
    clips whose sync peak is significant, filtered_unrelated = clips filtered for having none);
    ``qa_enabled``; ``thresholds``
    (the build's ``qa`` options); ``report`` (where :func:`write_report` puts the page).
    """
    return summarize(load_dataset(dataset_dir))


_BOUNDS = {"min": "min", "max": "max", "max_abs": "max |x|"}


def _line(label: str, text: str) -> str:
    return f"{label:<11}{text}"


def format_summary(summary: dict) -> str:
    """~10–20 aligned lines of plain text for the terminal (the report path is left to the caller)."""
    counts, hours = summary["counts"], summary["hours"]
    lines = [
        _line("dataset", f"{summary['dataset']}  ({summary['backend']}, {fmt.number(summary['fps'])} fps, "
                         f"built {fmt.built_at(summary['built_at'])})"),
        _line("verdict", f"{summary['verdict']['level'].upper()}: {summary['verdict']['text']}"),
        _line("", f"{'count':>12} {'time':>10}"),
        _line("inputs", f"{counts['inputs']:>12} {fmt.duration(hours['input'] * 3600):>10}   "
                        f"ok {counts['ok']}, failed {counts['failed']}"
                        + (f", {summary['unknown_duration_inputs']} of unknown duration"
                           if summary["unknown_duration_inputs"] else "")),
        _line("probed", f"{counts['probed']:>12} {fmt.duration(hours['probed'] * 3600):>10}"),
        _line("clips", f"{counts['clips_found']:>12} {fmt.duration(hours['clips'] * 3600):>10}   face clips found"),
        _line("kept", f"{counts['clips']:>12} {fmt.duration(hours['kept'] * 3600):>10}   "
                      f"{fmt.percent(hours['kept'], hours['input'])} of the input time, {counts['frames']} frames"),
    ]
    if summary["failures_by_error"]:
        stages = ", ".join(f"{stage} {entry['count']}" for stage, entry in summary["failures_by_stage"].items())
        errors = ", ".join(f"{error} {entry['count']}" + (f" ({fmt.duration(entry['hours'] * 3600)})" if entry["hours"] else "")
                           for error, entry in summary["failures_by_error"].items())
        lines += [_line("failures", stages), _line("", errors)]
    shown = [(name, entry) for name, entry in summary["metrics"].items() if entry["n"] and "threshold" in entry]
    if shown:
        state = "QA threshold" if summary["qa_enabled"] else "QA threshold (filters off)"
        lines.append(_line("metrics", f"{'median':>32} [p05 … p95]   {state}, kept clips beyond it"))
        for name, entry in shown:
            spread = f"[{fmt.number(entry['p05'])} … {fmt.number(entry['p95'])}]"
            lines.append(_line("", f"{name:<22}{fmt.number(entry['median']):>10} {spread:<21}"
                                   f"{_BOUNDS[entry['bound']]} {fmt.number(entry['threshold'])}, "
                                   f"{entry['beyond_threshold_kept']} beyond"))
    if summary["jitter"]:
        lines.append(_line("jitter", "smooth/raw median: " + ", ".join(
            f"{group} {fmt.number(entry['median_ratio'], 2)}" for group, entry in summary["jitter"].items())))
    av = summary["av_offset"]
    if av["ms"]["n"]:
        limit = f"±{av['threshold_s'] * 1000:.0f} ms" if av["threshold_s"] is not None else "no threshold"
        lines.append(_line("av offset", f"median {fmt.number(av['ms']['median'], 2)} ms [{fmt.number(av['ms']['p05'], 2)} … "
                                        f"{fmt.number(av['ms']['p95'], 2)}]; {av['beyond_threshold_kept']} kept beyond "
                                        f"{limit}, {av['filtered']} filtered; {av['significant']} significant, "
                                        f"{av['filtered_unrelated']} filtered as unrelated"))
    return "\n".join(lines)


def describe_dataset(dataset: str | Path | Storage, failures_shown: int = 20, sources_shown: int = 20) -> str:
    """``pseudo3d inspect``'s text of a dataset: :func:`format_summary`, then the first
    ``failures_shown`` failure rows and the kept clips and seconds of the first ``sources_shown``
    sources by id."""
    loaded = load_dataset(dataset)
    lines = [format_summary(summarize(loaded))]
    if loaded.n_failures:
        lines.append("failure rows:")
        for row in loaded.failures.slice(0, failures_shown).to_pylist():
            clip = f" [{row['clip']}]" if row["clip"] else ""
            lines.append(f"  - {PurePosixPath(row['source']).name}{clip}: {row['stage']}/{row['error']}: {row['message']}")
        if loaded.n_failures > failures_shown:
            lines.append(f"  ... and {loaded.n_failures - failures_shown} more (the failures table, failures/)")
    if loaded.n_clips:
        lines.append("clips by source:")
        by_source = (loaded.manifest.group_by("source_id").aggregate([("key", "count"), ("duration_s", "sum")])
                     .sort_by("source_id"))
        for row in by_source.slice(0, sources_shown).to_pylist():
            lines.append(f"  {row['source_id']:<48} {row['key_count']:>3} clip(s) {row['duration_s_sum']:7.2f} s")
        if by_source.num_rows > sources_shown:
            lines.append(f"  ... and {by_source.num_rows - sources_shown} more (the manifest table, manifest/)")
    return "\n".join(lines)


def describe_shard(storage: Storage, name: str) -> str:
    """``pseudo3d inspect``'s text of shard ``name`` (a ``.tar``) in folder ``storage``: whether
    it is committed, one line per sample, and the arrays of the first."""
    lines = [f"shard     {storage.url_of(name)}"]
    shard = find_shard(storage, name)
    if shard is not None:
        lines.append(f"committed yes   samples {shard.n_samples}   {shard.n_bytes / 1e6:.1f} MB   "
                     f"sha256 {shard.sha256[:16]}…")
    elif not list_markers(dataset_of(storage)) and not legacy_commits(dataset_of(storage)):
        lines.append("committed unknown (no commit markers beside it: a shard copied out of its dataset?)")
    else:
        lines.append("committed NO (no commit marker names it: an interrupted writer, or one that lost the race "
                     "to commit its unit)")
    for index, sample in enumerate(iter_samples(storage.url_of(name))):
        meta = sample.get("meta.json", {})
        audio, rate = sample.get("audio.flac", (np.zeros(0), 0))
        lines.append(f"{sample['__key__']}: {meta.get('n_frames')} frames @ {meta.get('fps')} fps, "
                     f"{meta.get('start_s', 0):.2f}-{meta.get('end_s', 0):.2f} s, audio {audio.shape[0]} @ {rate} Hz")
        if index == 0:
            for member, value in sorted(sample.items()):
                if member.endswith(".npy"):
                    lines.append(f"    {member:<28} {str(value.dtype):<8} {tuple(value.shape)}")
    return "\n".join(lines)
