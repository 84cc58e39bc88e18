"""Dataset-level files, derived from the committed shards alone.

``sources.parquet``, ``failures.parquet``, ``manifest.parquet`` and ``dataset.json`` are views over
the commit markers and the shards' sidecar parquet files, rewritten (atomically) at the end of
every build, so they always agree with what is committed, after a resume too.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import platform
from collections import Counter
from typing import Any

import pyarrow as pa

import pseudo3d
from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.schemas.commits import Commit, committed_shards, current_sources, read_commits
from pseudo3d.schemas.layout import SHARD_DIR
from pseudo3d.schemas.sample import to_jsonable
from pseudo3d.schemas.tables import FAILURES_SCHEMA, MANIFEST_BASE_SCHEMA, SOURCES_SCHEMA, table_from_rows
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage, parquet_bytes, read_parquet

log = logging.getLogger(__name__)


def _checked(storage: Storage, commits: list[Commit], fingerprint: str) -> tuple[list[Commit], list[Commit]]:
    """(The sound commits, the broken ones), once checked: each comes from this configuration and
    no source is committed twice in one attempt (two builds wrote at once; both raise
    :class:`Pseudo3DError`), and every shard a marker names exists. A unit that lost a shard is
    broken: its marker (and its other shards) is removed, so that the next build rebuilds it."""
    foreign = sorted({commit.path for commit in commits if commit.stats.get("config_fingerprint") != fingerprint})
    if foreign:
        raise Pseudo3DError(f"{storage.url_of(foreign[0])} (and {len(foreign) - 1} more) comes from a build with another "
                            "configuration: two builds wrote into this dataset; rebuild it with --overwrite")
    seen: dict[tuple[str, int], str] = {}
    for commit in commits:
        for row in commit.sources:
            twice = seen.setdefault((row["source_id"], row.get("attempt", 1)), commit.path)
            if twice != commit.path:
                raise Pseudo3DError(f"{row['source_id']} is committed by both {storage.url_of(twice)} and "
                                    f"{storage.url_of(commit.path)}: two builds wrote into this dataset at once; "
                                    "rebuild it with --overwrite")
    present = set(storage.list(SHARD_DIR))
    broken = [commit for commit in commits
              if any(name not in present for shard in commit.shards for name in (f"{shard.name}.tar", f"{shard.name}.parquet"))]
    if not broken:
        return commits, []
    for commit in broken:
        storage.delete(commit.path)
        for shard in commit.shards:
            storage.delete(shard.tar)
            storage.delete(shard.parquet)
        log.warning("unit %d had lost a shard; its marker was removed, so the next build rebuilds it", commit.unit)
    dropped = {commit.path for commit in broken}
    return [commit for commit in commits if commit.path not in dropped], broken


PACKAGES = ("numpy", "av", "mediapipe", "opencv-contrib-python", "pyarrow", "scipy", "soundfile")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "pseudo3d": pseudo3d.__version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def write_dataset_files(storage: Storage, config: BuildConfig) -> dict[str, Any]:
    """Write the four dataset-level files into the dataset at ``storage``; returns the card
    (``dataset.json``) as a dict. Raises :class:`Pseudo3DError` where the commits break the
    dataset's guarantees (:func:`_checked`)."""
    commits, broken = _checked(storage, read_commits(storage), config.fingerprint())
    card = _write(storage, config, commits)
    if broken:
        raise Pseudo3DError(f"{len(broken)} unit(s) of {storage.url} had lost shards (unit {broken[0].unit} first); "
                            "they were removed from the dataset: run the same command again to rebuild them")
    return card


def _write(storage: Storage, config: BuildConfig, commits: list[Commit]) -> dict[str, Any]:
    shards = committed_shards(commits)
    current = current_sources(commits)
    sources = [row for _, row in current.values()]
    failures = [row for commit in commits for row in commit.failures if current[row["source_id"]][0] is commit]
    storage.write_bytes("sources.parquet", parquet_bytes(table_from_rows(sources, SOURCES_SCHEMA)))
    storage.write_bytes("failures.parquet", parquet_bytes(table_from_rows(failures, FAILURES_SCHEMA)))
    manifests = [read_parquet(storage, shard.parquet) for shard in shards]
    manifests = [table for table in manifests if table.num_rows]
    manifest = (pa.concat_tables(manifests, promote_options="permissive") if manifests
                else MANIFEST_BASE_SCHEMA.empty_table())
    storage.write_bytes("manifest.parquet", parquet_bytes(manifest))

    status = Counter(row["status"] for row in sources)
    assets: dict[str, str] = {}
    numerics: list[dict] = []
    for commit in commits:
        assets.update(commit.stats.get("assets", {}))
        if commit.stats.get("numerics") and commit.stats["numerics"] not in numerics:
            numerics.append(commit.stats["numerics"])
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
            "units": len(commits),
            "shards": len(shards),
            "frames": int(sum(shard.n_frames for shard in shards)),
            "failures_by_stage": dict(sorted(Counter(row["stage"] for row in failures).items())),
            "failures_by_error": dict(sorted(Counter(row["error"] for row in failures).items())),
        },
        "hours": {
            "input": sum(row["duration_s"] or 0.0 for row in sources) / 3600.0,
            "kept": sum(shard.seconds for shard in shards) / 3600.0,
        },
        "files": {
            "shards": [shard.tar for shard in shards],
            "manifest": "manifest.parquet",
            "sources": "sources.parquet",
            "failures": "failures.parquet",
        },
    }
    storage.write_bytes("dataset.json", (json.dumps(to_jsonable(card), indent=2, sort_keys=True) + "\n").encode())
    return card

