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
import json
import logging
import os
import posixpath
import re
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import fsspec

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


def resolve_sources(inputs: Iterable[str], allowed_protocols: Iterable[str] | None = None) -> list[Source]:
    """All sources named by ``inputs``, deduplicated by URI and sorted by identity.

    ``allowed_protocols`` (``limits.allowed_protocols``): when given, an input URL with another
    protocol is refused before anything is listed. URLs found inside list files are not checked
    here: they are untrusted data, and the probe stage turns a refused one into a failure row.
    """
    entries: list[Entry] = []
    inputs = list(inputs)
    if not inputs:
        raise Pseudo3DError("no INPUT given: name a directory, glob, video file or list file")
    allowed = None if allowed_protocols is None else tuple(allowed_protocols)
    for raw in inputs:
        protocol = protocol_of(str(raw))
        if allowed is not None and protocol not in allowed:
            raise Pseudo3DError(f"input {raw!r}: protocol {protocol!r} is not in limits.allowed_protocols "
                                f"({', '.join(allowed)}); add it there in the --config YAML to read from it")
        entries.extend(_expand(str(raw)))

    by_uri: dict[str, Entry] = {}
    for entry in entries:
        if entry.uri in by_uri:
            log.warning("input %s is named more than once; it is processed once", entry.uri)
            continue
        by_uri[entry.uri] = entry

    sources = []
    by_identity: dict[str, str] = {}
    by_id: dict[str, str] = {}
    for uri, identity, reference, metadata, size in by_uri.values():
        if identity in by_identity:
            raise Pseudo3DError(
                f"inputs {by_identity[identity]} and {uri} both have the identity {identity!r}, so their "
                "sample keys would collide: give the input folders distinct names, or list the videos in "
                "a CSV with an 'id' column")
        source_id = make_source_id(identity)
        if source_id in by_id:
            raise Pseudo3DError(f"inputs {by_id[source_id]} and {uri} get the same source id {source_id}; "
                                "list the videos in a CSV with an 'id' column to name them apart")
        by_identity[identity] = by_id[source_id] = uri
        sources.append(Source(uri=uri, identity=identity, source_id=source_id, metadata=metadata,
                              reference=reference, size_bytes=size))
    sources.sort(key=lambda source: source.identity)
    return sources


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


class Entry(NamedTuple):
    """A source as an input names it, before its id is made."""

    uri: str
    identity: str
    reference: str
    """The portable reference (:attr:`Source.reference`)."""
    metadata: dict[str, Any]
    size: int | None
    """Bytes, from the listing (None: not known)."""


def _expand(raw: str) -> list[Entry]:
    """The sources ``raw`` names, with their sizes where the listing gives them."""
    if _is_url(raw):
        protocol = protocol_of(raw)
        raw = protocol + raw[len(protocol):]  # S3://b/k is s3://b/k
        fs, path = fsspec.core.url_to_fs(raw)
        to_uri = (lambda p: f"{protocol}://{p}") if protocol != "file" else (lambda p: p)
    else:
        fs, path = fsspec.filesystem("file"), os.path.abspath(os.path.expanduser(raw))
        to_uri = lambda p: p  # noqa: E731 - local paths stay plain paths

    suffix = posixpath.splitext(path)[1].lower()
    if _GLOB_CHARS.search(path) and not fs.exists(path):
        base, pattern = _glob_base(fs, path)
        found = fs.glob(pattern, detail=True)
        matches = sorted(p for p, info in found.items() if info.get("type") == "file" and _is_video(p))
        if not matches:
            raise Pseudo3DError(f"input {raw!r}: the glob matched no video files")
        root_name = posixpath.basename(base.rstrip("/"))
        return [_entry(to_uri(p), posixpath.join(root_name, posixpath.relpath(p, base)), found[p].get("size"))
                for p in matches]
    if not fs.exists(path):
        raise Pseudo3DError(f"input not found: {raw}")
    if fs.isdir(path):
        found = fs.find(path, detail=True)
        files = sorted(p for p in found if _is_video(p) and not _is_hidden(p, path))
        if not files:
            raise Pseudo3DError(f"input {raw!r}: no video files found below it "
                                f"(looked for {', '.join(sorted(VIDEO_EXTENSIONS))})")
        root_name = posixpath.basename(path.rstrip("/"))
        return [_entry(to_uri(p), posixpath.join(root_name, posixpath.relpath(p, path)), found[p].get("size"))
                for p in files]
    if suffix in LIST_EXTENSIONS:
        return _read_list_file(fs, path, to_uri, raw)
    return [_entry(to_uri(path), posixpath.basename(path), fs.size(path))]


def _entry(uri: str, identity: str, size: int | None) -> Entry:
    """A source found by listing: a remote one is referred to by its URL, a local one by its
    identity (its path below the input root, prefixed by the root's name)."""
    return Entry(uri, identity, uri if _is_url(uri) else identity, {}, size)


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


def _read_list_file(fs, path: str, to_uri, raw: str) -> list[Entry]:
    """The sources a list file names; a local one's size from ``stat`` (a URL's is not known:
    one request per entry would cost more than the listing)."""
    suffix = posixpath.splitext(path)[1].lower()
    folder = posixpath.dirname(path)
    if suffix == ".txt":
        with fs.open(path, "rt") as handle:
            lines = [line.strip() for line in handle]
        rows = [{"path": line} for line in lines if line and not line.startswith("#")]
    else:
        rows = _read_table_rows(fs, path, suffix, raw)
    entries = []
    for number, row in enumerate(rows, start=1):
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
        entries.append(Entry(uri, identity, reference, metadata, _local_size(uri)))
    if not entries:
        raise Pseudo3DError(f"list file {raw} holds no paths")
    return entries


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


def _read_table_rows(fs, path: str, suffix: str, raw: str) -> list[dict[str, Any]]:
    import pyarrow.csv
    import pyarrow.parquet

    try:
        with fs.open(path, "rb") as handle:
            if suffix == ".parquet":
                table = pyarrow.parquet.read_table(handle)
            else:
                options = pyarrow.csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
                table = pyarrow.csv.read_csv(handle, parse_options=options)
    except Exception as exc:  # pyarrow raises several types for unreadable tables
        raise Pseudo3DError(f"list file {raw}: cannot read it as {suffix[1:]}: {exc}") from None
    if "path" not in table.column_names:
        raise Pseudo3DError(f"list file {raw}: needs a 'path' column; it has "
                            f"{', '.join(table.column_names) or 'no columns'}")
    return table.to_pylist()


def local_path(uri: str) -> Path | None:
    """The local filesystem path of a source, or None for a remote URL."""
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    return None if _is_url(uri) else Path(uri)
