"""The report's tabular sections as HTML: summary, funnel, failures and sources.

Every string that comes from the data (file names, messages, codes) goes through :func:`esc`.
Funnel steps carry ``data-count`` and ``data-seconds`` attributes so tools (and the tests) can
read the numbers without parsing prose.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pseudo3d.qa.report import fmt
from pseudo3d.qa.report.data import (Dataset, FunnelStep, clip_failures, clips_of, error_counts, failure_groups,
                                     of_failed_sources, probe_failures, seconds_lost)

MAX_TABLE_ROWS = 2000
"""Rows shown in a per-row table; the rest are counted and left to the Parquet file."""
OPEN_ROWS = 100
"""Tables longer than this start folded."""


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def section(section_id: str, title: str, lead: str, body: str) -> str:
    """A ``<section id=...>`` with its heading and a one-paragraph lead (``lead`` is HTML)."""
    return (f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>'
            f'<p class="lead">{lead}</p>{body}</section>')


def table(headers: list[tuple[str, str]], rows: list[list[tuple[str, str]]]) -> str:
    """``headers``: (label, css class); ``rows``: cells as (HTML, css class)."""
    head = "".join(f'<th class="{cls}">{esc(label)}</th>' for label, cls in headers)
    body = "".join("<tr>" + "".join(f'<td class="{cls}">{cell}</td>' for cell, cls in row) + "</tr>" for row in rows)
    return f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _share_bar(part: int, whole: int) -> str:
    share = 100.0 * part / whole if whole else 0.0
    return f'<span class="minibar"><i style="width:{share:.0f}%"></i></span>{fmt.percent(part, whole)}'


def _more(hidden: int, what: str, where: str) -> str:
    return f'<p class="empty">… and {fmt.plural(hidden, what)} more in {esc(where)}.</p>' if hidden > 0 else ""


def _collapsible(title: str, body: str, n_rows: int) -> str:
    """Long tables fold away (no script needed); short ones are shown open."""
    state = " open" if n_rows <= OPEN_ROWS else ""
    return f'<details{state}><summary>{esc(title)}</summary>{body}</details>'


def _stat(key: str, value: str, detail: str) -> str:
    return f'<div class="stat"><div class="k">{key}</div><div class="v">{value}</div><div class="d">{detail}</div></div>'


def summary_section(dataset: Dataset, summary: dict) -> str:
    counts, hours, verdict = summary["counts"], summary["hours"], summary["verdict"]
    kept_s, input_s = hours["kept"] * 3600, hours["input"] * 3600
    packages = dataset.card.get("packages", {})
    shards = counts.get("shards")
    stats = "".join([
        _stat("Inputs", str(counts["inputs"]), f'{counts["ok"]} ok · {counts["failed"]} failed'),
        _stat("Clips kept", str(counts["clips"]), f'{counts["frames"]} frames'
              + (f" in {fmt.plural(int(shards), 'shard')}" if shards is not None else "")),
        _stat("Time kept", esc(fmt.duration(kept_s)), f"of {esc(fmt.duration(input_s))} input ({fmt.percent(kept_s, input_s)})"),
        _stat("Backend", esc(summary["backend"]), f"{fmt.number(summary['fps'])} fps"),
        _stat("Built", esc(fmt.built_at(summary["built_at"])[:10]),
              esc(fmt.built_at(summary["built_at"])[11:]) + (f" · pseudo3d {esc(packages['pseudo3d'])}"
                                                             if "pseudo3d" in packages else "")),
    ])
    level = verdict["level"]
    label = {"good": "Looks good", "review": "Review", "poor": "Poor yield"}.get(level, level)
    banner = f'<div class="verdict {esc(level)}"><span class="pill {esc(level)}">{esc(label)}</span><span>{esc(verdict["text"])}</span></div>'
    return section("summary", "Summary", "What went in, what came out, and whether it is worth a closer look.",
                   banner + f'<div class="stats">{stats}</div>')


def _errors_text(dataset: Dataset, rows: np.ndarray) -> str:
    """The errors of the failure rows ``rows`` ((n_failures,) bool) and their counts, as HTML."""
    return ", ".join(f"{esc(error)} {n}" for error, n in error_counts(dataset, rows))


def _drops(dataset: Dataset, steps: list[FunnelStep]) -> list[str]:
    """What was lost between consecutive funnel steps, as HTML."""
    failures = dataset.failures
    probe = probe_failures(dataset)
    no_clips = (dataset.failure_text("clip") == "") & ~probe & of_failed_sources(dataset)
    dropped = clip_failures(dataset)
    untracked = steps[1].seconds - steps[2].seconds
    notes = []
    notes.append(f"− {fmt.plural(int(probe.sum()), 'input')} failed the probe ({_errors_text(dataset, probe)})"
                 if probe.any() else "every input passed the probe")
    text = f"− {esc(fmt.duration(max(untracked, 0.0)))} with no usable face track"
    if no_clips.any():
        inputs = pc.count_distinct(failures["source_id"].filter(pa.array(no_clips))).as_py()
        text += f"; {fmt.plural(inputs, 'input')} produced no clip ({_errors_text(dataset, no_clips)})"
    notes.append(text if untracked > 0.05 or no_clips.any() else "every probed input yielded face clips")
    notes.append(f"− {fmt.plural(int(dropped.sum()), 'clip')}, {esc(fmt.duration(steps[2].seconds - steps[3].seconds))}, "
                 f"dropped ({_errors_text(dataset, dropped)})" if dropped.any() else "no clip was dropped")
    return notes


def funnel_section(dataset: Dataset, steps: list[FunnelStep]) -> str:
    top = steps[0].seconds or 0.0
    details = {"inputs": "every source listed", "probed": "opened and passed the probe",
               "clips": "continuous face tracks", "kept": "written to the shards"}
    parts = []
    drops = _drops(dataset, steps)
    for index, step in enumerate(steps):
        share = step.seconds / top if top > 0 else (step.count / steps[0].count if steps[0].count else 0.0)
        unknown = f"<small>+ {step.n_unknown} of unknown duration</small>" if step.n_unknown else ""
        parts.append(
            f'<div class="step {step.key}" data-step="{step.key}" data-count="{step.count}" data-seconds="{step.seconds:.3f}">'
            f'<div class="label">{esc(step.label)}<small>{details[step.key]}</small></div>'
            f'<div class="bar"><span style="width:{100 * min(share, 1.0):.1f}%"></span></div>'
            f'<div class="value"><b>{step.count}</b> {step.unit} · {esc(fmt.duration(step.seconds))}'
            f'{" (" + fmt.percent(step.seconds, top) + ")" if index and top else ""}{unknown}</div></div>')
        if index < len(drops):
            note = drops[index]
            parts.append(f'<div class="drop{"" if note.startswith("−") else " none"}">{note}</div>')
    lead = ("From every input to the clips written, counted and timed at each step. Bars are proportional "
            "to video time; inputs whose probe failed have no known duration.")
    return section("funnel", "Funnel", lead, f'<div class="funnel">{"".join(parts)}</div>')


def _lost_text(seconds: float, unknown: int) -> str:
    if unknown and not seconds:
        return "unknown"
    return esc(fmt.duration(seconds)) + (f" + {unknown} unknown" if unknown else "")


def failures_section(dataset: Dataset) -> str:
    lead = ("Every failure row of the build: inputs that failed entirely, short face tracks that were dropped, "
            "and clips the QA filters rejected (their error names the metric).")
    if not dataset.n_failures:
        return section("failures", "Failures", lead, '<p class="empty">No failures: every input produced clips and every clip was kept.</p>')
    groups = failure_groups(dataset)
    total = sum(g.count for g in groups)
    summary_rows = [[(f'<span class="tag">{esc(g.stage)}</span>', ""), (f"<code>{esc(g.error)}</code>", ""),
                     (str(g.count), "num"), (_share_bar(g.count, total), "num"), (_lost_text(g.seconds, g.n_unknown), "num")]
                    for g in groups]
    by_reason = table([("Stage", ""), ("Error", ""), ("Rows", "num"), ("Share", "num"), ("Time lost", "num")], summary_rows)
    rows = []
    shown = dataset.failures.slice(0, MAX_TABLE_ROWS).to_pylist()
    for row, lost in zip(shown, seconds_lost(dataset)[:MAX_TABLE_ROWS].tolist()):
        rows.append([(esc(fmt.file_name(row["source"])), "file"), (f'<span class="mono">{esc(row.get("clip") or "whole input")}</span>', ""),
                     (f'<span class="tag">{esc(row["stage"])}</span>', ""), (f"<code>{esc(row['error'])}</code>", ""),
                     (esc(row.get("message")), "msg"), (esc(fmt.duration(lost)) if math.isfinite(lost) else "—", "num")])
    every = table([("Input file", ""), ("Clip", ""), ("Stage", ""), ("Error", ""), ("Message", ""), ("Time lost", "num")], rows)
    every += _more(dataset.n_failures - len(rows), "failure row", "the failures table (failures/)")
    return section("failures", "Failures", lead, f"<h3>By reason</h3>{by_reason}"
                   + _collapsible(f"Every failure row ({dataset.n_failures})", every, len(rows)))


def sources_section(dataset: Dataset) -> str:
    durations, frames = dataset.column("duration_s"), dataset.column("n_frames")
    confidence, offsets = dataset.column("confidence_mean"), dataset.column("av_offset_s")
    # Failed sources first when the table has to be cut, then the rest, each in input order.
    failed = dataset.source_status() == "failed"
    shown = np.sort(np.r_[np.flatnonzero(failed), np.flatnonzero(~failed)][:MAX_TABLE_ROWS])
    listed = dataset.sources.take(pa.array(shown, pa.int64())).to_pylist()
    index_of = clips_of(dataset, [source["source_id"] for source in listed])
    rows = []
    for source in listed:
        clips = index_of.get(source["source_id"], [])
        kept = float(durations[clips].sum()) if clips else 0.0
        weights = frames[clips]
        conf = confidence[clips]
        ok = np.isfinite(conf) & np.isfinite(weights)
        mean_conf = float(np.average(conf[ok], weights=weights[ok])) if ok.any() and weights[ok].sum() > 0 else math.nan
        offset = offsets[clips]
        offset = offset[np.isfinite(offset)]
        offset_text = f"{np.median(offset) * 1000:+.1f} ms" if offset.size else "—"
        status = source["status"]
        rows.append([
            (esc(fmt.file_name(source["source"])), "file"),
            (f'<span class="pill {esc(status)}">{esc(status)}</span>', ""),
            (str(len(clips)), "num"),
            (f"{esc(fmt.duration(kept))} / {esc(fmt.duration(source.get('duration_s')))}", "num"),
            (fmt.number(mean_conf), "num"),
            (offset_text, "num"),
            (esc(source.get("reason") or ""), "reason" if status == "failed" else "msg"),
        ])
    lead = ("One row per input, in input order: what each source contributed, and why it did not when it failed. "
            "Mean confidence is frame-weighted over the source's kept clips; the AV offset is their median.")
    body = table([("File", ""), ("Status", ""), ("Clips", "num"), ("Kept / input", "num"), ("Mean conf.", "num"),
                  ("AV offset", "num"), ("Reason", "")], rows)
    body += _more(dataset.n_sources - len(rows), "source", "the sources table (sources/; every failed source is listed)")
    return section("sources", "Sources", lead, _collapsible(f"Every source ({dataset.n_sources})", body, len(rows)))
