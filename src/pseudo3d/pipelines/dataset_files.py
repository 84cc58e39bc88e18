"""Dataset-level files, derived from the committed shards alone.

``sources.parquet``, ``failures.parquet``, ``manifest.parquet`` and ``dataset.json`` are views over
the shards' stats JSON and sidecar parquet files, rewritten (atomically) at the end of every
build, so they always agree with what is committed, after a resume too.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import pseudo3d
from pseudo3d.config import BuildConfig
from pseudo3d.files import write_atomically, write_bytes_atomically
from pseudo3d.pipelines.shard_writer import committed_shards, current_sources
from pseudo3d.schemas.sample import to_jsonable
from pseudo3d.schemas.tables import FAILURES_SCHEMA, MANIFEST_BASE_SCHEMA, SOURCES_SCHEMA, table_from_rows
from pseudo3d.schemas.version import SCHEMA_VERSION

PACKAGES = ("numpy", "av", "mediapipe", "opencv-contrib-python", "pyarrow", "scipy", "soundfile")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "pseudo3d": pseudo3d.__version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def write_dataset_files(out_dir: Path, config: BuildConfig) -> dict[str, Any]:
    """Write the four dataset-level files; returns the card (``dataset.json``) as a dict."""
    out_dir = Path(out_dir)
    shards = committed_shards(out_dir / "shards")
    current = current_sources(shards)
    sources = [row for _, row in current.values()]
    failures = [row for shard in shards for row in shard.stats["failures"] if current[row["source_id"]][0] is shard]
    _write_parquet(table_from_rows(sources, SOURCES_SCHEMA), out_dir / "sources.parquet")
    _write_parquet(table_from_rows(failures, FAILURES_SCHEMA), out_dir / "failures.parquet")
    manifests = [pq.read_table(out_dir / "shards" / f"{shard.name}.parquet") for shard in shards]
    manifests = [table for table in manifests if table.num_rows]
    manifest = (pa.concat_tables(manifests, promote_options="permissive") if manifests
                else MANIFEST_BASE_SCHEMA.empty_table())
    _write_parquet(manifest, out_dir / "manifest.parquet")

    status = Counter(row["status"] for row in sources)
    assets: dict[str, str] = {}
    numerics: list[dict] = []
    for shard in shards:
        assets.update(shard.stats.get("assets", {}))
        if shard.stats.get("numerics") and shard.stats["numerics"] not in numerics:
            numerics.append(shard.stats["numerics"])
    card = {
        "schema_version": SCHEMA_VERSION,
        "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config.card_dict(),
        "config_fingerprint": config.fingerprint(),
        "packages": package_versions(),
        "assets": dict(sorted(assets.items())),
        "numerics": numerics,
        "counts": {
            "inputs": len(sources),
            "ok": status.get("ok", 0),
            "failed": status.get("failed", 0),
            "clips": manifest.num_rows,
            "shards": len(shards),
            "frames": int(sum(shard.stats["n_frames"] for shard in shards)),
            "failures_by_stage": dict(sorted(Counter(row["stage"] for row in failures).items())),
            "failures_by_error": dict(sorted(Counter(row["error"] for row in failures).items())),
        },
        "hours": {
            "input": sum(row["duration_s"] or 0.0 for row in sources) / 3600.0,
            "kept": sum(shard.stats["seconds"] for shard in shards) / 3600.0,
        },
        "files": {
            "shards": [f"shards/{shard.name}.tar" for shard in shards],
            "manifest": "manifest.parquet",
            "sources": "sources.parquet",
            "failures": "failures.parquet",
        },
    }
    write_bytes_atomically(out_dir / "dataset.json", (json.dumps(to_jsonable(card), indent=2, sort_keys=True) + "\n").encode())
    return card


def _write_parquet(table: pa.Table, path: Path) -> None:
    write_atomically(path, lambda temporary: pq.write_table(table, temporary))
