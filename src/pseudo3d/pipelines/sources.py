"""Resolve build inputs (directories, globs, files, list files; local or fsspec URLs) to sources.

Rules, in the order they are tried for each INPUT:

* a list file (``.csv``, ``.tsv``, ``.parquet``, ``.txt``): one source per row. CSV/TSV/Parquet
  need a ``path`` column; relative paths are resolved against the list file's folder; an ``id``
  column, if present, names the source (keys then survive moving the corpus); every other
  column is carried into the manifest as metadata, as text (:func:`metadata_text`). A ``.txt``
  list holds one path per line.
* a directory: every video file below it (by extension, see :data:`VIDEO_EXTENSIONS`), recursively;
* a glob pattern: the matching video files;
* any other existing file: taken as a source as it is (a file that is not a video becomes a
  failure row later, not an error now).

A path that exists is taken literally even when its name holds glob characters (``*``, ``?``,
``[``, ``]``): ``clip[1].mp4`` is that file and ``takes [2020]/`` that directory. In a pattern,
leading folders that exist literally are literal too, so ``takes [2020]/*.mp4`` lists that
folder's videos; elsewhere in a pattern, ``[[]`` matches a literal ``[``.

A path that does not exist, or a directory or glob without videos, is an error naming it.

Each source gets an *identity* (the path relative to its input root, prefixed by the root's
name; the path as written in a list file; or the list file's ``id``) and a ``source_id`` derived
from it: a readable slug of its folder and file name plus 16 hex digits (64 bits) of its SHA-256.
Keys are therefore stable across runs and machines as long as the corpus layout is. Two inputs
with the same identity, or (with odds of about 1 in 3·10⁷ for a million sources) the same id,
are an error naming both: they would share sample keys and a resume would skip one of them.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import itertools
import json
import logging
import os
import posixpath
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pseudo3d.errors import Pseudo3DError
from pseudo3d.schemas.records import Source
from pseudo3d.storage import protocol_of

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
    ".flv", ".wmv", ".3gp", ".mxf", ".ogv",
})
LIST_EXTENSIONS = frozenset({".csv", ".tsv", ".parquet", ".txt"})
_GLOB_CHARS = re.compile(r"[*?\[]")


def resolve_sources(inputs: Iterable[str], allowed_protocols: Iterable[str] | None = None) -> "SourceList":
    """All sources named by ``inputs``, deduplicated by URI and sorted by identity, as a
    :class:`SourceList` (a sequence of :class:`Source`).

    ``allowed_protocols`` (``limits.allowed_protocols``): when given, an input URL with another
    protocol is refused before anything is listed. URLs found inside list files are not checked
    here: they are untrusted data, and the probe stage turns a refused one into a failure row.

    Each input is listed into Arrow batches as it is read (a list file batch by batch), so the
    sources never exist as Python objects all at once: a million ``s3://`` rows of a list file
    hold about 0.4 kB a source once listed, 0.8 kB at the peak while listing (bench/bench_inputs.py).
    """
    inputs = list(inputs)
    if not inputs:
        raise Pseudo3DError("no INPUT given: name a directory, glob, video file or list file")
    allowed = None if allowed_protocols is None else tuple(allowed_protocols)
    for raw in inputs:
        protocol = protocol_of(str(raw))
        if allowed is not None and protocol not in allowed:
            raise Pseudo3DError(f"input {raw!r}: protocol {protocol!r} is not in limits.allowed_protocols "
                                f"({', '.join(allowed)}); add it there in the --config YAML to read from it")
    entries = pa.Table.from_batches([batch for raw in inputs for batch in _expand(str(raw))], _ENTRY_SCHEMA)
    return SourceList(_sources_table(entries))


def _sources_table(entries: pa.Table) -> pa.Table:
    """``entries`` (:data:`_ENTRY_SCHEMA`, in input order) as a :data:`SOURCE_SCHEMA` table: the first
    of each URI, sorted by identity (stably), with ids. Raises :class:`Pseudo3DError` naming two inputs
    that share an identity or a source id. Sorts rather than hashes, and copies the rows once."""
    uris = entries.column("uri")
    by_uri = pc.sort_indices(uris)  # stable: the first of equal URIs is the one named first
    repeated = _repeats(uris.take(by_uri))
    if len(repeated):
        dropped = by_uri.to_numpy()[repeated + 1]
        log.warning("%d input(s) are named more than once (%s first); each is processed once", len(dropped),
                    uris[int(dropped.min())].as_py())
        keep = np.ones(entries.num_rows, bool)
        keep[dropped] = False
        entries = entries.filter(pa.array(keep))
    entries = entries.take(pc.sort_indices(entries.column("identity")))
    identities = entries.column("identity")
    same = _repeats(identities)
    if len(same):
        first_uri, other_uri = (entries.column("uri")[int(same[0]) + offset].as_py() for offset in (0, 1))
        raise Pseudo3DError(
            f"inputs {first_uri} and {other_uri} both have the identity {identities[int(same[0])].as_py()!r}, "
            "so their sample keys would collide: give the input folders distinct names, or list the videos "
            "in a CSV with an 'id' column")
    ids = pa.chunked_array([pa.array([make_source_id(identity) for identity in chunk.to_pylist()], pa.string())
                            for chunk in identities.chunks], pa.string())
    sorted_ids = ids.take(pc.sort_indices(ids))
    clashes = _repeats(sorted_ids)
    if len(clashes):
        source_id = sorted_ids[int(clashes[0])].as_py()
        first_uri, other_uri = entries.column("uri").filter(pc.equal(ids, source_id)).to_pylist()[:2]
        raise Pseudo3DError(f"inputs {first_uri} and {other_uri} get the same source id {source_id}; "
                            "list the videos in a CSV with an 'id' column to name them apart")
    return pa.table({"uri": entries.column("uri"), "identity": identities, "source_id": ids,
                     "reference": entries.column("reference"), "size_bytes": entries.column("size_bytes"),
                     "attempt": pa.chunked_array([pa.array(np.ones(entries.num_rows, np.int64))]),
                     "metadata": entries.column("metadata")}, schema=SOURCE_SCHEMA)


def _repeats(values: pa.ChunkedArray) -> np.ndarray:
    """Positions ``i`` where the sorted ``values`` hold the same value at ``i`` and ``i + 1``."""
    if len(values) < 2:
        return np.zeros(0, np.int64)
    return np.flatnonzero(pc.equal(values[1:], values[:-1]).to_numpy(zero_copy_only=False))


SOURCE_SCHEMA = pa.schema([
    pa.field("uri", pa.string(), nullable=False),
    pa.field("identity", pa.string(), nullable=False),
    pa.field("source_id", pa.string(), nullable=False),
    pa.field("reference", pa.string()),
    pa.field("size_bytes", pa.int64()),
    pa.field("attempt", pa.int64(), nullable=False),
    pa.field("metadata", pa.string()),
])
"""A :class:`SourceList`'s columns: :class:`Source`'s fields; ``reference`` null where it is the
identity, ``metadata`` a JSON object (keys in their order) or null where there is none."""

_ROWS_PER_BATCH = 8192
"""Sources made into Python objects at a time (iterating a :class:`SourceList`, listing an input)."""


class SourceList(Sequence[Source]):
    """Sources held as an Arrow table (:data:`SOURCE_SCHEMA`) rather than as Python objects (about
    0.4 kB a source instead of 0.8 kB, bench/bench_inputs.py). Items are made when read; a slice is a view
    (:meth:`slice`); pickled, a slice carries only its own rows. Equal to any sequence of the
    same sources in the same order."""

    def __init__(self, table: pa.Table):
        self.table = table

    @classmethod
    def of(cls, sources: "Iterable[Source]") -> "SourceList":
        """``sources`` as a SourceList (itself when it is one). Raises ValueError for a chunk of a
        source: plans hold whole sources."""
        if isinstance(sources, SourceList):
            return sources
        columns: dict[str, list[Any]] = {name: [] for name in SOURCE_SCHEMA.names}
        for source in sources:
            if source.chunk is not None:
                raise ValueError(f"{source.source_id} is a chunk of a source; a source list holds whole sources")
            for name, value in zip(SOURCE_SCHEMA.names, _row_of(source)):
                columns[name].append(value)
        return cls(pa.table(columns, schema=SOURCE_SCHEMA))

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[position] for position in range(start, stop, step)]
            return self.slice(start, stop)
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(f"source {index} of {len(self)}")
        return _source_of(self.table.slice(position, 1).to_pylist()[0])

    def slice(self, start: int, stop: int) -> "SourceList":
        """Sources ``[start, stop)``, sharing this list's memory."""
        return SourceList(self.table.slice(start, max(0, stop - start)))

    def __iter__(self) -> Iterator[Source]:
        for batch in self.table.to_batches(max_chunksize=_ROWS_PER_BATCH):
            for row in batch.to_pylist():
                yield _source_of(row)

    def column(self, name: str) -> list[Any]:
        """One column of :data:`SOURCE_SCHEMA` as Python values (``attempt``, ``source_id``, ...)."""
        return self.table.column(name).to_pylist()

    def __add__(self, other: "Sequence[Source]") -> "SourceList":
        """The sources of both, this list's first (as ``list + list``)."""
        if not isinstance(other, Sequence):
            return NotImplemented
        return SourceList(pa.concat_tables([self.table, SourceList.of(other).table]))

    def __radd__(self, other: "Sequence[Source]") -> "SourceList":
        if not isinstance(other, Sequence):
            return NotImplemented
        return SourceList(pa.concat_tables([SourceList.of(other).table, self.table]))

    def where(self, mask: Any) -> "SourceList":
        """The sources where the boolean array ``mask`` is true, in order."""
        return SourceList(self.table.filter(mask))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SourceList):
            return self.table.equals(other.table)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are not hashable

    def __repr__(self) -> str:
        return f"SourceList({len(self)} sources)"

    def __reduce__(self):
        return _read_ipc, (table_ipc(self.table),)


def table_ipc(table: pa.Table) -> bytes:
    """``table`` in Arrow's IPC stream format: a slice written alone (a pickled slice would carry
    its whole parent's buffers)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _read_ipc(data: bytes) -> SourceList:
    return SourceList(pa.ipc.open_stream(data).read_all())


def _row_of(source: Source) -> tuple[Any, ...]:
    """``source``'s values in :data:`SOURCE_SCHEMA`'s order."""
    return (source.uri, source.identity, source.source_id,
            None if source.reference == source.identity else source.reference, source.size_bytes, source.attempt,
            json.dumps(dict(source.metadata), default=str) if source.metadata else None)


def _source_of(row: dict[str, Any]) -> Source:
    return Source(uri=row["uri"], identity=row["identity"], source_id=row["source_id"],
                  metadata=json.loads(row["metadata"]) if row["metadata"] else {}, attempt=row["attempt"],
                  reference=row["reference"] or "", size_bytes=row["size_bytes"])


def make_source_id(identity: str) -> str:
    """``slug-hash16``: readable, unique, and safe as a WebDataset key prefix (no dots).

    The slug is the identity's folder and file stem (``0047496/video.mp4`` → ``0047496-video``),
    at most 40 characters; the hash is the first 16 hex digits (64 bits) of the identity's SHA-256.
    """
    parts = identity.rstrip("/").split("/")
    stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]
    words = [*parts[-2:-1], stem]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(words)).strip("-_").lower()[-40:].strip("-_") or "source"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{slug}-{digest}"


def _is_url(text: str) -> bool:
    return "://" in text


_ENTRY_SCHEMA = pa.schema([
    pa.field("uri", pa.string(), nullable=False),
    pa.field("identity", pa.string(), nullable=False),
    pa.field("reference", pa.string()),
    pa.field("size_bytes", pa.int64()),
    pa.field("metadata", pa.string()),
])
"""A source as an input names it, before its id is made: its URI, identity, portable reference
(:attr:`Source.reference`; null where it is the identity), size from the listing (null: not known) and list-file metadata (a JSON
object, null: none)."""


class _Batches:
    """Entries collected into Arrow batches of :data:`_ROWS_PER_BATCH` rows."""

    def __init__(self) -> None:
        self.done: list[pa.RecordBatch] = []
        self.rows: list[tuple[str, str, str | None, int | None, str | None]] = []

    def add(self, uri: str, identity: str, reference: str, size: int | None, metadata: str | None = None) -> None:
        self.rows.append((uri, identity, None if reference == identity else reference, size, metadata))
        if len(self.rows) >= _ROWS_PER_BATCH:
            self.flush()

    def flush(self) -> list[pa.RecordBatch]:
        if self.rows:
            columns = [list(column) for column in zip(*self.rows)]
            self.done.append(pa.RecordBatch.from_arrays(
                [pa.array(column, field.type) for column, field in zip(columns, _ENTRY_SCHEMA)], schema=_ENTRY_SCHEMA))
            self.rows = []
        return self.done


def _expand(raw: str) -> list[pa.RecordBatch]:
    """The sources ``raw`` names (:data:`_ENTRY_SCHEMA`), with their sizes where the listing gives them."""
    if _is_url(raw):
        protocol = protocol_of(raw)
        raw = protocol + raw[len(protocol):]  # S3://b/k is s3://b/k
        fs, path = fsspec.core.url_to_fs(raw)
        to_uri = (lambda p: f"{protocol}://{p}") if protocol != "file" else (lambda p: p)
    else:
        fs, path = fsspec.filesystem("file"), os.path.abspath(os.path.expanduser(raw))
        to_uri = lambda p: p  # noqa: E731 - local paths stay plain paths

    suffix = posixpath.splitext(path)[1].lower()
    out = _Batches()
    if _GLOB_CHARS.search(path) and not fs.exists(path):
        base, pattern = _glob_base(fs, path)
        found = fs.glob(pattern, detail=True)
        matches = sorted(p for p, info in found.items() if info.get("type") == "file" and _is_video(p))
        if not matches:
            raise Pseudo3DError(f"input {raw!r}: the glob matched no video files")
        root_name = posixpath.basename(base.rstrip("/"))
        for p in matches:
            _add_found(out, to_uri(p), posixpath.join(root_name, posixpath.relpath(p, base)), found[p].get("size"))
        return out.flush()
    if not fs.exists(path):
        raise Pseudo3DError(f"input not found: {raw}")
    if fs.isdir(path):
        found = fs.find(path, detail=True)
        files = sorted(p for p in found if _is_video(p) and not _is_hidden(p, path))
        if not files:
            raise Pseudo3DError(f"input {raw!r}: no video files found below it "
                                f"(looked for {', '.join(sorted(VIDEO_EXTENSIONS))})")
        root_name = posixpath.basename(path.rstrip("/"))
        for p in files:
            _add_found(out, to_uri(p), posixpath.join(root_name, posixpath.relpath(p, path)), found[p].get("size"))
        return out.flush()
    if suffix in LIST_EXTENSIONS:
        return _read_list_file(fs, path, to_uri, raw)
    _add_found(out, to_uri(path), posixpath.basename(path), fs.size(path))
    return out.flush()


def _add_found(out: _Batches, uri: str, identity: str, size: int | None) -> None:
    """A source found by listing: a remote one is referred to by its URL, a local one by its
    identity (its path below the input root, prefixed by the root's name)."""
    out.add(uri, identity, uri if _is_url(uri) else identity, size)


def _is_video(path: str) -> bool:
    return posixpath.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _is_hidden(path: str, root: str) -> bool:
    return any(part.startswith(".") for part in posixpath.relpath(path, root).split("/"))


def _glob_base(fs, pattern: str) -> tuple[str, str]:
    """The folder a glob is relative to (its leading parts that hold no glob characters or
    exist as folders literally) and the pattern with that folder escaped."""
    parts = pattern.split("/")
    index = 0
    while index < len(parts) - 1:
        base = "/".join(parts[:index + 1]) or "/"
        if _GLOB_CHARS.search(parts[index]) and not fs.isdir(base):
            break
        index += 1
    base = "/".join(parts[:index]) or "/"
    rest = "/".join(parts[index:])
    escaped = glob.escape(base) if _GLOB_CHARS.search(base) else base
    return base, posixpath.join(escaped, rest)


def _read_list_file(fs, path: str, to_uri, raw: str) -> list[pa.RecordBatch]:
    """The sources a list file names, read a batch of rows at a time; a local one's size from
    ``stat`` (a URL's is not known: one request per entry would cost more than the listing)."""
    suffix = posixpath.splitext(path)[1].lower()
    folder = posixpath.dirname(path)
    out = _Batches()
    number = 0
    for rows in _list_rows(fs, path, suffix, raw):
        for row in rows:
            number += 1
            written = row.pop("path", None)
            if not isinstance(written, str) or not written.strip():
                raise Pseudo3DError(f"list file {raw}: row {number} has an empty 'path'")
            written = written.strip()
            explicit_id = row.pop("id", None)
            if _is_url(written):
                uri = reference = written
            else:
                local = posixpath.normpath(written if posixpath.isabs(written) else posixpath.join(folder, written))
                uri = to_uri(local)
                # a local file relative to the list file, however it was written; a remote one by its URL
                reference = uri if _is_url(uri) else posixpath.relpath(local, folder)
            identity = str(explicit_id) if explicit_id not in (None, "") else written
            metadata = {str(k): metadata_text(v) for k, v in row.items() if v is not None}
            out.add(uri, identity, reference, _local_size(uri), json.dumps(metadata) if metadata else None)
    if not number:
        raise Pseudo3DError(f"list file {raw} holds no paths")
    return out.flush()


def _list_rows(fs, path: str, suffix: str, raw: str) -> Iterator[list[dict[str, Any]]]:
    """A list file's rows, a batch of dicts at a time (a ``.txt`` list: ``{"path": line}``)."""
    if suffix == ".txt":
        with fs.open(path, "rt") as handle:
            lines = (line.strip() for line in handle)
            paths = (line for line in lines if line and not line.startswith("#"))
            while rows := [{"path": line} for line in itertools.islice(paths, _ROWS_PER_BATCH)]:
                yield rows
        return
    table = _read_table(fs, path, suffix, raw)
    for batch in table.to_batches(max_chunksize=_ROWS_PER_BATCH):
        yield batch.to_pylist()


def _local_size(uri: str) -> int | None:
    """The size of a local file in bytes, or None (a URL, or no such file: the probe says so)."""
    path = local_path(uri)
    try:
        return path.stat().st_size if path is not None else None
    except OSError:
        return None


def metadata_text(value: Any) -> str:
    """A list-file value as the text a dataset keeps: a string as it is, a boolean as
    ``true``/``false``, a number as Python writes it, a date or time in ISO 8601, anything else as
    JSON. Text whatever the list file's column types, so one column keeps one type in every unit
    of a dataset, also when two list files (or two builds) infer different types for it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    return json.dumps(value, default=str, sort_keys=True)


def _read_table(fs, path: str, suffix: str, raw: str) -> pa.Table:
    import pyarrow.csv
    import pyarrow.parquet

    try:
        with fs.open(path, "rb") as handle:
            if suffix == ".parquet":
                table = pyarrow.parquet.read_table(handle)
            else:
                options = pyarrow.csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
                # paths and ids are text as written: an id 00123 is not the number 123
                text = pyarrow.csv.ConvertOptions(column_types={"path": pa.string(), "id": pa.string()})
                table = pyarrow.csv.read_csv(handle, parse_options=options, convert_options=text)
    except Exception as exc:  # pyarrow raises several types for unreadable tables
        raise Pseudo3DError(f"list file {raw}: cannot read it as {suffix[1:]}: {exc}") from None
    if "path" not in table.column_names:
        raise Pseudo3DError(f"list file {raw}: needs a 'path' column; it has "
                            f"{', '.join(table.column_names) or 'no columns'}")
    return table


def local_path(uri: str) -> Path | None:
    """The local filesystem path of a source, or None for a remote URL."""
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    return None if _is_url(uri) else Path(uri)
