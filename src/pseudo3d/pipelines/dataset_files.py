"""The card, ``dataset.json``, derived from the commit markers alone.

Since data contract 4 the index tables (``manifest/``, ``sources/``, ``failures/``) are the units'
own Parquet parts, written by their writers; what is left for the end of a build is the card: the
live markers are read a batch at a time and summed (their counts, shards and parts), so finishing
costs a read of each marker, never of the index or the shards, and the driver holds a few hundred
bytes per unit.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import platform
from collections import Counter
from typing import Any

import pseudo3d
from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.shard_writer import remove_broken, split_broken
from pseudo3d.schemas.commits import Commit, live_markers, read_commits
from pseudo3d.schemas.layout import INDEX_TABLES
from pseudo3d.schemas.sample import to_jsonable
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)


MARKER_BATCH = 64
"""Commit markers read concurrently at a time."""


def _read_units(storage: Storage, fingerprint: str) -> tuple[list[Commit], list[Commit]]:
    """The dataset's live commits, checked, as (sound ones, broken ones). Raises
    :class:`Pseudo3DError` where a commit comes from another configuration (two builds wrote into
    the dataset). A commit that lost a file is broken (:func:`split_broken`): the caller removes it,
    so that the next build rebuilds its unit."""
    markers = live_markers(storage)
    commits: list[Commit] = []
    for start in range(0, len(markers), MARKER_BATCH):
        commits += read_commits(storage, markers[start:start + MARKER_BATCH])
    older = [commit for commit in commits if commit.schema_version != SCHEMA_VERSION]
    if older:
        raise Pseudo3DError(f"{storage.url_of(older[0].path)} is a commit marker of data contract version "
                            f"{older[0].schema_version}, in a dataset of version {SCHEMA_VERSION}: rebuild it with --overwrite")
    foreign = [commit.path for commit in commits if commit.stats.get("config_fingerprint") != fingerprint]
    if foreign:
        raise Pseudo3DError(f"{storage.url_of(foreign[0])} (and {len(foreign) - 1} more) comes from a build with another "
                            "configuration: two builds wrote into this dataset; rebuild it with --overwrite")
    return split_broken(storage, commits)


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
    """Write the card (``dataset.json``) of the dataset at ``storage`` from its commit markers;
    returns it as a dict. Raises :class:`Pseudo3DError` where the commits break the dataset's
    guarantees (:func:`_read_units`), and, after writing the card of the rest, where units had lost
    files (they are removed: running the build again rebuilds them)."""
    units, broken = _read_units(storage, config.fingerprint())
    remove_broken(storage, broken)
    card = _card(config, units)
    storage.write_bytes("dataset.json", (json.dumps(to_jsonable(card), indent=2, sort_keys=True) + "\n").encode())
    if broken:
        raise Pseudo3DError(f"{len(broken)} unit(s) of {storage.url} had lost files (unit {broken[0].unit} first); "
                            "they were removed from the dataset: run the same command again to rebuild them")
    return card


def _card(config: BuildConfig, units: list[Commit]) -> dict[str, Any]:
    """The card of a dataset whose live commits are ``units``."""
    totals: Counter[str] = Counter()
    by_stage: Counter[str] = Counter()
    by_error: Counter[str] = Counter()
    input_seconds = 0.0
    assets: dict[str, str] = {}
    numerics: list[dict] = []
    for unit in units:
        counts = unit.counts
        totals.update({name: int(counts.get(name, 0)) for name in ("sources", "ok", "failed")})
        by_stage.update(counts.get("failures_by_stage", {}))
        by_error.update(counts.get("failures_by_error", {}))
        input_seconds += float(counts.get("input_seconds", 0.0))
        assets.update(unit.stats.get("assets", {}))
        if unit.stats.get("numerics") and unit.stats["numerics"] not in numerics:
            numerics.append(unit.stats["numerics"])
    shards = [shard for unit in units for shard in unit.shards]
    return {
        "schema_version": SCHEMA_VERSION,
        "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config.card_dict(),
        "config_fingerprint": config.fingerprint(),
        "packages": package_versions(),
        "assets": dict(sorted(assets.items())),
        "numerics": numerics,
        "counts": {
            "inputs": totals["sources"],
            "ok": totals["ok"],
            "failed": totals["failed"],
            "clips": sum(shard.n_samples for shard in shards),
            "units": len(units),
            "shards": len(shards),
            "frames": int(sum(shard.n_frames for shard in shards)),
            "failures_by_stage": dict(sorted(by_stage.items())),
            "failures_by_error": dict(sorted(by_error.items())),
        },
        "hours": {
            "input": input_seconds / 3600.0,
            "kept": sum(shard.seconds for shard in shards) / 3600.0,
        },
        "files": {
            "shards": [shard.tar for shard in shards],
            **{table: [path for unit in units for path in unit.parts(table)] for table in INDEX_TABLES},
        },
    }
