"""Finding and reading pseudo3d shards for training, locally or through fsspec URLs.

A *source* names shards in one of four ways: a dataset directory (the shards its commit markers
name), a directory of tars, a glob (``/data/ds/shards/shard-00000[0-3]-*.tar``), or one ``.tar``;
each may be an fsspec URL (``s3://bucket/ds``, ``gs://...``,
``https://host/ds/shards/shard-000000-00-a1b2c3d4.tar``).
A pseudo3d shard that no commit marker of its dataset names is not committed (a build is still
writing it, or its writer died or lost the race to commit; see docs/data-contract.md) and is left
out; so is a data contract 2 ``shard-NNNNNN.tar`` without its ``shard-NNNNNN.json``.

Reading streams the tar and decodes only the members asked for; the member checks are
:mod:`pseudo3d.schemas.shard_reader`'s (no links, no unsafe names, no pickle-capable kinds).
"""

from __future__ import annotations

import glob as globlib
import json
import posixpath
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pseudo3d.schemas.commits import committed_shards, read_commits
from pseudo3d.schemas.layout import COMMIT_DIR, LEGACY_SHARD, parse_shard_name
from pseudo3d.schemas.sample import AUDIO_MEMBER, META_MEMBER, decode_flac, decode_npy, decode_sample
from pseudo3d.schemas.shard_reader import iter_raw_samples
from pseudo3d.storage import Storage


@dataclass(frozen=True)
class ShardSource:
    """One weighted source and the shards it resolved to (sorted URLs or local paths)."""

    spec: str
    weight: float
    shards: tuple[str, ...]


@dataclass(frozen=True)
class ClipRecord:
    """The members of one clip that training needs, decoded."""

    shard: str
    key: str
    meta: dict[str, Any]
    audio: Any
    """(N,) float32 or None when not asked for."""
    sample_rate: int
    arrays: dict[str, Any]
    """``NAME`` → array for the ``NAME.npy`` members asked for."""

    @property
    def where(self) -> str:
        return f"{self.shard}: sample {self.key!r}"


def weighted_datasets(sources: Sequence[Any]) -> list[tuple[str, float]]:
    """``[(path_or_url, weight), ...]`` from pairs or bare strings (weight 1)."""
    if isinstance(sources, (str, bytes)) or not isinstance(sources, Sequence):
        raise ValueError(f"sources must be a list of (path_or_url, weight) pairs, got {sources!r}")
    if not sources:
        raise ValueError("sources is empty: name at least one dataset")
    parsed = []
    for item in sources:
        spec, weight = (item, 1.0) if isinstance(item, str) else tuple(item)
        weight = float(weight)
        if not weight > 0:
            raise ValueError(f"source {spec!r}: weight must be > 0, got {weight}")
        parsed.append((str(spec), weight))
    return parsed


def resolve_datasets(sources: Sequence[Any]) -> list[ShardSource]:
    return [ShardSource(spec, weight, resolve_shards(spec)) for spec, weight in weighted_datasets(sources)]


def resolve_shards(spec: str) -> tuple[str, ...]:
    """The committed shards a source names, sorted; raises ``FileNotFoundError`` naming the
    source when it names none."""
    fs, path = fsspec.core.url_to_fs(str(spec))
    path = path.rstrip("/") or "/"
    if globlib.has_magic(path):
        found = [p for p in fs.glob(path) if p.endswith(".tar")]
    elif path.endswith(".tar"):
        if not fs.isfile(path):
            raise FileNotFoundError(f"source {spec}: no such shard")
        found = [path]
    elif fs.isdir(path):
        if fs.isdir(posixpath.join(path, COMMIT_DIR)):  # a dataset: the shards its markers name
            root = Storage(fs.unstrip_protocol(path) if not isinstance(fs, LocalFileSystem) else path)
            found = [posixpath.join(path, shard.tar) for shard in committed_shards(read_commits(root))]
        else:
            folder = posixpath.join(path, "shards") if fs.isdir(posixpath.join(path, "shards")) else path
            found = [p for p in fs.ls(folder, detail=False) if p.endswith(".tar")]
    else:
        raise FileNotFoundError(f"source {spec}: not a dataset directory, shard directory, glob or .tar")
    committed = _committed(fs, sorted(found))
    if not committed:
        raise FileNotFoundError(f"source {spec}: no committed shards (a .tar its dataset's commit marker names) found")
    local = isinstance(fs, LocalFileSystem)
    return tuple(p if local else fs.unstrip_protocol(p) for p in committed)


def _committed(fs: Any, paths: list[str]) -> list[str]:
    """The committed shards among ``paths``: a pseudo3d shard only where a commit marker of its
    dataset names it (:mod:`pseudo3d.schemas.commits`), or where its folder has no dataset with
    commits beside it (shards copied out of their dataset); other tars as they are."""
    local = isinstance(fs, LocalFileSystem)
    named: dict[str, set[str] | None] = {}
    kept = []
    for path in paths:
        folder, name = posixpath.split(path)
        stem = name[:-len(".tar")]
        if name.startswith("."):
            continue
        if parse_shard_name(stem) is not None:
            if folder not in named:
                root = posixpath.dirname(folder)
                commits = read_commits(Storage(root if local else fs.unstrip_protocol(root)))
                # no markers at all: shards copied out of their dataset, read as they are
                named[folder] = {shard.name for shard in committed_shards(commits)} if commits else None
            names = named[folder]
            if names is None or stem in names:
                kept.append(path)
        elif LEGACY_SHARD.fullmatch(stem):
            if fs.exists(path[: -len(".tar")] + ".json"):
                kept.append(path)
        else:
            kept.append(path)
    return kept


def iter_clips(shard: str, array_names: Sequence[str], *, audio: bool = True) -> Iterator[ClipRecord]:
    """Decoded clips of ``shard`` with their meta, audio (if asked) and the named arrays."""
    wanted = {META_MEMBER, *(f"{name}.npy" for name in array_names)}
    if audio:
        wanted.add(AUDIO_MEMBER)
    for key, members in iter_raw_samples(shard, wanted):
        where = f"{shard}: sample {key!r}"
        if META_MEMBER not in members:
            raise ValueError(f"{where} has no {META_MEMBER}")
        meta = json.loads(members[META_MEMBER])
        samples, rate = None, 0
        if audio:
            if AUDIO_MEMBER not in members:
                raise ValueError(f"{where} has no {AUDIO_MEMBER}")
            samples, rate = decode_flac(members[AUDIO_MEMBER])
            if samples.ndim != 1:
                raise ValueError(f"{where}: {AUDIO_MEMBER} has {samples.shape[1]} channels; pseudo3d audio is mono")
        arrays = {name: decode_npy(members[f"{name}.npy"]) for name in array_names if f"{name}.npy" in members}
        yield ClipRecord(shard=shard, key=key, meta=meta, audio=samples, sample_rate=rate, arrays=arrays)


def first_sample(source: str) -> dict[str, Any]:
    """The first sample of a source's first non-empty shard, every member decoded (as
    :func:`pseudo3d.schemas.shard_reader.iter_samples` gives it: ``"__key__"``,
    ``"meta.json"``, ``"audio.flac"`` → (audio, rate), ``"NAME.npy"`` → array)."""
    for shard in resolve_shards(source):
        for key, members in iter_raw_samples(shard):
            sample = decode_sample(members)
            sample["__key__"] = key
            return sample
    raise ValueError(f"source {source}: its shards hold no samples")
