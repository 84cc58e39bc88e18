"""Human-readable summaries of a dataset or a single shard (``pseudo3d inspect``), local or behind
an fsspec URL."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from pseudo3d.errors import Pseudo3DError
from pseudo3d.schemas.shard_reader import iter_samples
from pseudo3d.storage import Storage, read_parquet


def summarize(path: str | Path) -> str:
    """A dataset's or a shard's summary; ``path`` is a local path or a URL."""
    text = str(path)
    storage = Storage(text, option="inspect")
    storage.check()
    if text.endswith(".tar"):
        parent, _, name = text.rstrip("/").rpartition("/")
        folder = Storage(parent or ".", option="inspect")
        if folder.is_file(name):
            return summarize_shard(folder, name)
    if storage.exists() and not storage.is_file(""):
        return summarize_dataset(storage)
    raise Pseudo3DError(f"inspect: {text} is neither a dataset directory nor a .tar shard")


def summarize_dataset(storage: Storage) -> str:
    if not storage.is_file("dataset.json"):
        raise Pseudo3DError(f"inspect: {storage.url} has no dataset.json (not a pseudo3d dataset, or its build never finished)")
    try:
        card = json.loads(storage.read_bytes("dataset.json"))
    except json.JSONDecodeError as exc:
        raise Pseudo3DError(f"inspect: {storage.url_of('dataset.json')} is not valid JSON ({exc})") from None
    counts, hours = card["counts"], card["hours"]
    lines = [
        f"dataset   {storage.url}",
        f"schema    v{card['schema_version']}   backend {card['config']['backend']}   "
        f"fps {card['config']['decode']['fps']:g}   built {card.get('built_at', '?')}",
        f"inputs    {counts['inputs']}   ok {counts['ok']}   failed {counts['failed']}",
        f"clips     {counts['clips']}   frames {counts['frames']}   "
        f"kept {hours['kept'] * 60:.2f} min of {hours['input'] * 60:.2f} min input",
        f"shards    {counts['shards']}",
    ]
    if counts["failures_by_error"]:
        lines.append("failures  " + ", ".join(f"{error} {n}" for error, n in counts["failures_by_error"].items()))
    failures = read_parquet(storage, "failures.parquet").to_pylist()
    for row in failures[:20]:
        clip = f" [{row['clip']}]" if row["clip"] else ""
        lines.append(f"  - {Path(row['source']).name}{clip}: {row['stage']}/{row['error']}: {row['message']}")
    if len(failures) > 20:
        lines.append(f"  ... and {len(failures) - 20} more (failures.parquet)")
    manifest = read_parquet(storage, "manifest.parquet")
    if manifest.num_rows:
        lines.append("clips by source:")
        per_source = Counter(manifest.column("source_id").to_pylist())
        seconds: Counter = Counter()
        for source_id, duration in zip(manifest.column("source_id").to_pylist(),
                                       manifest.column("duration_s").to_pylist()):
            seconds[source_id] += duration
        for source_id, n in sorted(per_source.items()):
            lines.append(f"  {source_id:<48} {n:>3} clip(s) {seconds[source_id]:7.2f} s")
        for column in ("confidence_mean", "jitter_mesh_raw", "jitter_mesh_smooth", "reprojection_error_px",
                       "jitter_flame_expression_raw", "jitter_flame_expression_smooth"):
            if column in manifest.column_names:
                values = np.asarray(manifest.column(column).to_pylist(), float)
                values = values[np.isfinite(values)]
                if not values.size:
                    continue
                lines.append(f"{column:<22} median {np.median(values):.4g}   min {values.min():.4g}   max {values.max():.4g}")
    return "\n".join(lines)


def summarize_shard(storage: Storage, name: str) -> str:
    """The summary of shard ``name`` (a ``.tar``) in folder ``storage``."""
    lines = [f"shard     {storage.url_of(name)}"]
    stats_name = name[:-len(".tar")] + ".json"
    if storage.is_file(stats_name):
        stats = json.loads(storage.read_bytes(stats_name))
        lines.append(f"committed yes   samples {stats['n_samples']}   {stats['n_bytes'] / 1e6:.1f} MB   "
                     f"sha256 {stats['sha256'][:16]}…")
    else:
        lines.append("committed NO (no stats JSON beside the tar: an interrupted build)")
    for index, sample in enumerate(iter_samples(storage.url_of(name))):
        meta = sample.get("meta.json", {})
        audio, rate = sample.get("audio.flac", (np.zeros(0), 0))
        lines.append(f"{sample['__key__']}: {meta.get('n_frames')} frames @ {meta.get('fps')} fps, "
                     f"{meta.get('start_s', 0):.2f}-{meta.get('end_s', 0):.2f} s, audio {audio.shape[0]} @ {rate} Hz")
        if index == 0:
            for name, value in sorted(sample.items()):
                if name.endswith(".npy"):
                    lines.append(f"    {name:<28} {str(value.dtype):<8} {tuple(value.shape)}")
    return "\n".join(lines)
