"""The card, ``dataset.json``, derived from the commit markers alone.

Since data contract 4 the index tables (``manifest/``, ``sources/``, ``failures/``) are the units'
own Parquet parts, written by their writers; what is left for the end of a build is the card: the
live markers are read a batch at a time and summed (their counts, shards and parts), so finishing
costs a read of each marker, never of the index or the shards, and the driver holds a few hundred
bytes per unit. Where ``--retry-failed`` committed again a unit whose rows a compaction held, that
stretch is compacted again first (:func:`pseudo3d.pipelines.compact.refresh`).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import platform
from collections import Counter
from typing import Any

import pseudo3d
from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.compact import refresh
from pseudo3d.pipelines.shard_writer import remove_broken
from pseudo3d.schemas.commits import Commit
from pseudo3d.schemas.compactions import IndexLayout, present_files, read_layout
from pseudo3d.schemas.index import index_files, write_card
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)


def _read_units(storage: Storage, fingerprint: str) -> tuple[IndexLayout, list[Commit]]:
    """The dataset's index layout (its live commits, checked, and compactions) without its broken
    units, and those. Raises :class:`Pseudo3DError` where a commit comes from another
    configuration (two builds wrote into the dataset). A unit that lost a file (or whose rows were
    in a compacted part that is lost) is broken: it is removed here, so that the next build
    rebuilds it."""
    layout = read_layout(storage)
    commits = layout.commits
    older = [commit for commit in commits if commit.schema_version != SCHEMA_VERSION]
    if older:
        raise Pseudo3DError(f"{storage.url_of(older[0].path)} is a commit marker of data contract version "
                            f"{older[0].schema_version}, in a dataset of version {SCHEMA_VERSION}: rebuild it with --overwrite")
    foreign = [commit.path for commit in commits if commit.stats.get("config_fingerprint") != fingerprint]
    if foreign:
        raise Pseudo3DError(f"{storage.url_of(foreign[0])} (and {len(foreign) - 1} more) comes from a build with another "
                            "configuration: two builds wrote into this dataset; rebuild it with --overwrite")
    sound, broken, lost = layout.split_lost(present_files(storage))
    if not broken and not lost:
        return layout, []
    remove_broken(storage, broken, lost)
    gone = {compaction.path for compaction in lost}
    return IndexLayout(sound, [compaction for compaction in layout.compactions if compaction.path not in gone]), broken


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
    layout, broken = _read_units(storage, config.fingerprint())
    layout = refresh(storage, layout)
    card = _card(config, layout)
    write_card(storage, card)
    if broken:
        raise Pseudo3DError(f"{len(broken)} unit(s) of {storage.url} had lost files (unit {broken[0].unit} first); "
                            "they were removed from the dataset: run the same command again to rebuild them")
    return card


def _card(config: BuildConfig, layout: IndexLayout) -> dict[str, Any]:
    """The card of a dataset whose index layout (live commits and compactions) is ``layout``."""
    units = layout.commits
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
            **index_files(layout),
        },
    }
