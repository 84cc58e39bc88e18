"""The shard writer: one unit's source outcomes in, its committed shards out.

Commit protocol (docs/data-contract.md), the same on local paths and object stores, for every
runner: the writer of unit ``U`` streams each of its shards out under a name of its own attempt,
``shards/shard-UUUUUU-PP-ATTEMPT.tar``, publishing it whole (:mod:`pseudo3d.storage`: a temporary
name, fsync and rename on a local path; a multipart upload on an object store), hashed as it is
written; then the unit's parts of the index tables, ``manifest/``, ``sources/`` and ``failures/``
``part-UUUUUU-ATTEMPT.parquet`` (a unit without clips or failures writes no part of that table);
last it *creates* the unit's commit marker ``_commits/unit-UUUUUU-DIGEST.json``, which names those
files and carries the unit's counts. The marker is created only where none of that name exists
(atomically: ``link(2)``, S3's ``If-None-Match: *``, GCS's generation precondition), so when two
writers build the same unit (a retried task, a speculative copy, two builds) exactly one commits;
the other deletes its own files. A unit committed again by ``--retry-failed`` keeps its committed
version's shards and manifest rows (rewritten into its own manifest part, with its new clips), names
the shards with its own files in a marker of a new digest that *replaces* the old one, then deletes
the old marker and the old version's own parts (where a compaction holds the old rows instead, the
end of the build compacts that run again). Anything that no live marker names is debris of a
writer that died, removed by :func:`remove_uncommitted`.

Shards are *source-atomic*: all clips of a source go to one shard. A unit's shard closes before a
source that would push it past ``max_samples`` or ``max_bytes`` (a shard holds at least one source
however large), and the next one opens, so the same unit contents always give the same shards. A
source longer than ``decode.chunk_s`` arrives chunk by chunk, and each chunk is packed that way:
its clips may go on in the unit's next shard, so no shard grows with one video's length.

Determinism: members are written in sample order with fixed metadata (mtime 0, uid/gid 0, mode
0644, no user names), so the same unit and configuration give byte-identical tars whatever the
runner, the worker count or the attempt; only the attempt in the file names differs.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import uuid
from collections import Counter, defaultdict
from typing import Any, Sequence

import pyarrow as pa

import pseudo3d
from pseudo3d.config import ShardConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.plan import Unit
from pseudo3d.schemas.commits import Commit, MarkerName, ShardFile, list_markers, live_markers, read_commits
from pseudo3d.schemas.compactions import Compaction, live_compactions, replaced_compactions
from pseudo3d.schemas.index import read_parts
from pseudo3d.schemas.layout import (COMMIT_DIR, INDEX_TABLES, SHARD_DIR, parse_compacted_part_path, parse_part_name,
                                     parse_shard_name, part_name, shard_name)
from pseudo3d.schemas.records import EncodedSample, SourceOutcome
from pseudo3d.schemas.sample import encode_json
from pseudo3d.schemas.tables import FAILURES_SCHEMA, SOURCES_SCHEMA, manifest_table, table_from_rows
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage, is_temporary, parquet_bytes

log = logging.getLogger(__name__)


def new_attempt() -> str:
    """A writer attempt's name: 8 random hex digits."""
    return uuid.uuid4().hex[:8]


def remove_uncommitted(storage: Storage, markers: list[MarkerName] | None = None) -> list[str]:
    """Delete the debris of writers that died or lost a commit race: temporary files, markers
    another one replaces, shards and index parts no live marker names, the parts of units a live
    compaction holds, and compacted parts no live compaction names. ``markers``: the dataset's
    markers, if already listed. Unit markers are read only for the units with files of more than
    one attempt (compaction markers, a few, are all read). Returns the names removed. Assumes no
    other build writes into the dataset meanwhile."""
    names = storage.list(COMMIT_DIR)
    markers = list_markers(storage, names) if markers is None else markers
    live = live_markers(storage, markers)
    compactions = live_compactions(storage, names)
    removed = []
    # replaced: the new version committed, and its writer died before deleting the old one
    for path in [*(marker.path for marker in sorted(set(markers) - set(live))),
                 *replaced_compactions(storage, names, compactions)]:
        storage.delete(path)
        removed.append(path)
    live_paths = {marker.path for marker in live}
    compacted = {unit for compaction in compactions for unit, path in compaction.covers.items() if path in live_paths}
    compacted_parts = {path for compaction in compactions for path in compaction.files()}
    committed_units = defaultdict(list)
    for marker in live:
        committed_units[marker.unit].append(marker)
    attempts: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for folder in (SHARD_DIR, *INDEX_TABLES, COMMIT_DIR):
        for name in (names if folder == COMMIT_DIR else storage.list(folder)):
            path = f"{folder}/{name}"
            if is_temporary(name):  # a file, or a runner's staging folder
                storage.delete_tree(path)
                removed.append(path)
                continue
            if folder in INDEX_TABLES and parse_compacted_part_path(path) and path not in compacted_parts:
                storage.delete(path)  # of a compaction that did not commit, or was replaced
                removed.append(path)
                continue
            parsed = (parse_shard_name(name) if folder == SHARD_DIR else
                      parse_part_name(name) if folder in INDEX_TABLES else None)
            if parsed is not None and folder in INDEX_TABLES and parsed[0] in compacted:
                storage.delete(path)  # its rows are in a live compaction's part
                removed.append(path)
            elif parsed is not None:
                attempts[parsed[0]][parsed[-1]].append(path)  # type: ignore[index]
    for unit, by_attempt in sorted(attempts.items()):
        if unit in committed_units and len(by_attempt) == 1:
            continue  # the committing writer's files, all named by its marker
        named: set[str] = set()
        if unit in committed_units:
            for commit in read_commits(storage, committed_units[unit]):
                named.update(commit.files())
        for path in sorted(path for paths in by_attempt.values() for path in paths if path not in named):
            storage.delete(path)
            removed.append(path)
    return removed


def outcome_size(outcome: SourceOutcome) -> tuple[int, int]:
    """What packing needs to know of an outcome: its samples and their bytes."""
    return len(outcome.samples), sum(sample.n_bytes for sample in outcome.samples)


NUMERICS_DECIDING = ("device", "precision")
"""The parts of a model's numerics that decide output bytes (versions are recorded, not checked)."""


def check_numerics(expected: dict[str, dict[str, str]] | None, found: dict[str, dict[str, str]]) -> None:
    """Refuse outputs computed on another device kind or in another precision than ``expected``
    (the dataset's): CUDA's bf16 and the CPU's fp32 give different bytes, so one dataset must not
    mix them. Raises :class:`Pseudo3DError` naming both."""
    if not expected or not found or _deciding(expected) == _deciding(found):
        return
    raise Pseudo3DError(
        f"this build computes {_describe(found)}, but the dataset was built with {_describe(expected)}; "
        "the outputs would differ: build into a new directory, pass --overwrite, or set "
        "reconstruct.device to match")


def _deciding(numerics: dict[str, dict[str, str]]) -> dict[str, dict[str, str | None]]:
    return {model: {key: values.get(key) for key in NUMERICS_DECIDING} for model, values in numerics.items()}


def _describe(numerics: dict[str, dict[str, str]]) -> str:
    return ", ".join(f"{model} on {values.get('device')} in {values.get('precision')}"
                     for model, values in sorted(numerics.items()))


class _ShardBuilder:
    """One shard being streamed into ``storage``."""

    def __init__(self, storage: Storage, name: str):
        self.storage = storage
        self.name = name
        self.rows: list[dict[str, Any]] = []
        self.n_bytes = 0
        self._file = storage.open_write(f"{SHARD_DIR}/{name}.tar")
        # typeshed's file protocol asks for read and seek too, which mode "w" never calls
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]

    def add(self, sample: EncodedSample) -> None:
        for suffix, data in sample.members.items():
            info = tarfile.TarInfo(f"{sample.key}.{suffix}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self.rows.append({**sample.row, "shard": self.name})
        self.n_bytes += sample.n_bytes

    def finish(self) -> ShardFile:
        """Publish the tar (hashed as it was written)."""
        self._tar.close()
        self._file.close()
        return ShardFile(name=self.name, n_samples=len(self.rows), n_bytes=self._file.size,
                         sha256=self._file.hexdigest(), n_frames=int(sum(row["n_frames"] for row in self.rows)),
                         seconds=float(sum(row["duration_s"] for row in self.rows)))

    def abort(self) -> None:
        """Drop the shard: its tar is never published."""
        self._tar.close()
        self._file.discard()


class UnitWriter:
    """Write unit ``unit``'s outcomes, given in its source order, into shards and index parts named
    by this writer's attempt; :meth:`commit` creates the unit's marker. ``numerics``: what the
    dataset's outputs were computed with so far (:func:`check_numerics`), or None. A unit with a
    :attr:`~pseudo3d.pipelines.plan.Unit.base` (``--retry-failed``) gets the outcomes of the
    sources it builds again, and commits them with the rest of its committed version."""

    def __init__(self, storage: Storage, unit: Unit, config: ShardConfig, fingerprint: str,
                 numerics: dict[str, dict[str, str]] | None = None, attempt: str | None = None):
        self.storage = storage
        self.unit = unit
        self.config = config
        self.fingerprint = fingerprint
        self.numerics = numerics or {}
        self.attempt = attempt or new_attempt()
        self.shards: list[ShardFile] = []
        """This writer's shards."""
        self.written: list[str] = []
        """Every file this writer published, paths relative to the dataset root."""
        self.sources: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.clips: list[dict[str, Any]] = []
        """Manifest rows of this writer's clips."""
        self.assets: dict[str, str] = dict(unit.base.assets) if unit.base else {}
        self._open: _ShardBuilder | None = None
        self._chunks: list[dict[str, Any]] = []  # the rows of the chunks of the source being added

    def add(self, outcome: SourceOutcome) -> None:
        """Write ``outcome``'s samples and keep its rows; a long source's outcomes come one per
        chunk, in order, and make one source row (:func:`merge_chunk_rows`)."""
        check_numerics(self.numerics, outcome.numerics)
        self.numerics = self.numerics or outcome.numerics
        n_samples, n_bytes = outcome_size(outcome)
        shard = self._open
        if shard is not None and shard.rows and (len(shard.rows) + n_samples > self.config.max_samples
                                                 or shard.n_bytes + n_bytes > self.config.max_bytes):
            self._finish_shard()
        if n_samples and self._open is None:
            first = len(self.unit.base.shards) if self.unit.base else 0
            self._open = _ShardBuilder(self.storage, shard_name(self.unit.index, first + len(self.shards), self.attempt))
            self.written.append(f"{SHARD_DIR}/{self._open.name}.tar")
        for sample in outcome.samples:
            self._open.add(sample)  # type: ignore[union-attr]  # opened above for a source with samples
        where = self._open.name if n_samples and self._open is not None else None
        row = {**outcome.source_row(), "shard": where, "unit": self.unit.index}
        if outcome.source.chunk is None:
            self.sources.append(row)
        else:
            self._chunks.append(row)
            if outcome.source.completes:
                self.sources.append(merge_chunk_rows(self._chunks))
                self._chunks = []
        self.failures.extend({**failure.to_row(), "unit": self.unit.index} for failure in outcome.failures)
        self.assets.update(outcome.assets)

    def commit(self) -> Commit | None:
        """Publish the open shard and the unit's index parts, then create the unit's marker: the
        commit. Returns the commit, or None when another writer committed the unit first (this
        writer's files are deleted)."""
        self._finish_shard()
        if len(self.sources) != len(self.unit.sources):
            raise RuntimeError(f"unit {self.unit.index}: {len(self.sources)} outcomes for "
                               f"{len(self.unit.sources)} sources")
        base = self.unit.base
        sources, failures = self.sources, self.failures
        if base is not None:
            again = {row["source_id"]: row for row in self.sources}
            sources = [again.pop(row["source_id"], row) for row in base.sources]
            failures = [*base.failures, *self.failures]
            if again:
                raise RuntimeError(f"unit {self.unit.index}: {', '.join(again)} is not one of its sources")
        clips = manifest_table(self.clips)
        kept = read_parts(self.storage, base.manifest, "manifest") if base is not None and base.manifest else None
        if kept is not None and kept.num_rows:
            clips = pa.concat_tables([kept, clips], promote_options="permissive") if clips.num_rows else kept
        parts = {"manifest": self._write_part("manifest", clips),
                 "sources": self._write_part("sources", table_from_rows(sources, SOURCES_SCHEMA)),
                 "failures": self._write_part("failures", table_from_rows(failures, FAILURES_SCHEMA))}
        shards = [*(base.shards if base else ()), *self.shards]
        status = Counter(row["status"] for row in sources)
        stats = {
            "schema_version": SCHEMA_VERSION,
            "pseudo3d_version": pseudo3d.__version__,
            "unit": self.unit.index,
            "digest": self.unit.digest,
            "attempt": self.attempt,
            "replaces": base.replaces if base else None,
            "config_fingerprint": self.fingerprint,
            "n_samples": sum(shard.n_samples for shard in shards),
            "n_bytes": sum(shard.n_bytes for shard in shards),
            "n_frames": sum(shard.n_frames for shard in shards),
            "seconds": sum(shard.seconds for shard in shards),
            "counts": {
                "sources": len(sources),
                "ok": status.get("ok", 0),
                "failed": status.get("failed", 0),
                "failures": len(failures),
                "failures_by_stage": dict(sorted(Counter(row["stage"] for row in failures).items())),
                "failures_by_error": dict(sorted(Counter(row["error"] for row in failures).items())),
                "input_seconds": float(sum(row["duration_s"] or 0.0 for row in sources)),
            },
            "shards": [{"shard": shard.name, "n_samples": shard.n_samples, "n_bytes": shard.n_bytes,
                        "sha256": shard.sha256, "n_frames": shard.n_frames, "seconds": shard.seconds}
                       for shard in shards],
            "parts": parts,
            "assets": dict(sorted(self.assets.items())),
            "numerics": self.numerics,
        }
        marker = self.unit.marker.path
        if not self.storage.create(marker, encode_json(stats)) and not self._created_by_this_writer(marker):
            log.info("unit %d was committed by another writer first; attempt %s deleted", self.unit.index,
                     self.attempt)
            self._delete_written()
            return None
        self.written = []  # committed: nothing of it is this writer's to delete any more
        if base is not None:
            _delete_replaced(self.storage, base.replaces, base.dropped)
        return Commit(marker, self.unit.index, stats, tuple(shards))

    def _created_by_this_writer(self, marker: str) -> bool:
        """Whether the marker that exists is this writer's own: a create whose response was lost
        and that the client sent again (S3 answers the second with "precondition failed")."""
        try:
            return json.loads(self.storage.read_bytes(marker)).get("attempt") == self.attempt
        except (OSError, ValueError, AttributeError):
            return False

    def abort(self) -> None:
        """Drop everything this writer wrote: nothing of it is committed."""
        shard, self._open = self._open, None
        if shard is not None:
            shard.abort()
            self.written.remove(f"{SHARD_DIR}/{shard.name}.tar")
        self._delete_written()

    def _write_part(self, table: str, rows: pa.Table) -> list[str]:
        """Publish ``rows`` as this writer's part of index table ``table``; none without rows (a
        unit always has source rows)."""
        if not rows.num_rows:
            return []
        path = f"{table}/{part_name(self.unit.index, self.attempt)}"
        self.storage.write_bytes(path, parquet_bytes(rows))
        self.written.append(path)
        return [path]

    def _finish_shard(self) -> None:
        shard, self._open = self._open, None
        if shard is not None:
            self.shards.append(shard.finish())
            self.clips.extend({**row, "unit": self.unit.index} for row in shard.rows)

    def _delete_written(self) -> None:
        for path in self.written:
            self.storage.delete(path)
        self.written, self.shards = [], []


def _delete_replaced(storage: Storage, marker: str, files: tuple[str, ...]) -> None:
    """Delete the version of a unit that a new commit replaced: its marker first, so that nothing
    live names the files that go next. Best effort: what is left (an error, a kill) is a replaced
    marker or files no live marker names, which the next clean-up removes."""
    for path in (marker, *files):
        try:
            storage.delete(path)
        except Exception as exc:  # noqa: BLE001 - the commit stands; the clean-up finishes this
            log.warning("could not delete %s, of a unit version that was replaced (%s); the next build removes it",
                        storage.url_of(path), exc)
            return


def remove_broken(storage: Storage, broken: list[Commit], compactions: Sequence[Compaction] = ()) -> None:
    """Delete broken commits' markers (first) and their remaining files, so that the next build
    builds their units again (from their first attempt); and the markers and parts of broken
    ``compactions`` (:meth:`~pseudo3d.schemas.compactions.IndexLayout.split_lost`)."""
    for commit in broken:
        storage.delete(commit.path)
        for path in commit.files():
            storage.delete(path)
        log.warning("unit %d had lost a file; its marker was removed, so that a build builds it again", commit.unit)
    for compaction in compactions:
        storage.delete(compaction.path)
        for path in compaction.files():
            storage.delete(path)
        log.warning("the compacted index parts of units %d..%d had lost a file; the compaction was removed",
                    compaction.first, compaction.last)


def merge_chunk_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The source row of a source built in chunks, from its chunks' rows (in order): ``ok`` when
    a chunk is; counts and clip seconds summed; ``shard`` the first shard holding its clips; the
    probe's columns from the first chunk that probed."""
    merged = dict(next((row for row in rows if row["duration_s"] is not None), rows[0]))
    ok = any(row["status"] == "ok" for row in rows)
    merged["status"] = "ok" if ok else "failed"
    merged["reason"] = "" if ok else (f"each of its {len(rows)} chunks failed (see the failure rows); "
                                      f"the first: {rows[0]['reason']}")
    for column in ("n_clips", "n_failures", "clip_seconds"):
        merged[column] = sum(row[column] for row in rows)
    merged["shard"] = next((row["shard"] for row in rows if row["shard"] is not None), None)
    return merged


def write_unit(storage: Storage, unit: Unit, outcomes: list[SourceOutcome], config: ShardConfig,
               fingerprint: str, numerics: dict[str, dict[str, str]] | None = None) -> Commit | None:
    """Write and commit ``unit`` from its ``outcomes`` (in its source order) in one go: what a
    distributed worker does. Returns the commit, or None where another writer committed first.
    Nothing is committed when it raises."""
    writer = UnitWriter(storage, unit, config, fingerprint, numerics)
    try:
        for outcome in outcomes:
            writer.add(outcome)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise
