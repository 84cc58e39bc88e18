"""Storage: the one way pseudo3d reads, lists, writes and deletes what a dataset is made of,
whether it lives under a local path or behind an fsspec URL (``s3://``, ``gs://``, ``az://``,
``memory://``, ...).

Writes are whole or absent, on every filesystem:

* **local paths**: the file is streamed into a hidden temporary name in its final directory
  (``.NAME.tmp``), flushed and fsynced, renamed into place, and the directory is fsynced, so after
  a power loss a file is either absent or whole and a rename reported done stays done;
* **object stores**: the object is streamed as a multipart upload, which the store makes visible
  only when it completes; a writer that fails aborts the upload, so nothing appears.

:meth:`Storage.create` writes a file only if it does not exist yet, atomically: a hard link
(``link(2)`` fails on an existing name) on local paths, ``If-None-Match: *`` on S3 (s3fs's
``mode="create"``), a generation precondition on GCS. It is what a commit marker is written with.

Credentials and endpoints come from the standard environment of each backend (``AWS_*`` variables
and profiles for S3, application default credentials for GCS) or from ``--storage-option
KEY=VALUE`` (:func:`apply_storage_options`), which reaches the worker processes too.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any, BinaryIO, Iterable, Mapping, Sequence

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pseudo3d.errors import ConfigError, Pseudo3DError

EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
"""fsspec protocol → the pseudo3d extra that installs its filesystem (pinned versions)."""
BACKEND_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
                    "abfss": "adlfs"}
LOCAL_PROTOCOLS = ("file", "local")
OBJECT_STORES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
"""Protocols whose objects appear only when their upload completes: written with autocommit."""


def protocol_of(target: str | os.PathLike) -> str:
    """The fsspec protocol of ``target``, lower-cased: what precedes ``://`` (all of it, so a
    chained URL such as ``simplecache::s3://...`` names its whole chain), or ``file`` for a plain
    path."""
    protocol, separator, _ = os.fspath(target).partition("://")
    return protocol.lower() if separator else "file"


def is_local(target: str | os.PathLike) -> bool:
    return protocol_of(target) in LOCAL_PROTOCOLS


def parse_storage_options(pairs: Iterable[str], option: str = "--storage-option") -> dict[str, Any]:
    """``KEY=VALUE`` pairs as filesystem keyword arguments. A value is read as JSON where it is
    JSON (``true``, ``3``, ``null``, ``{"max_attempts": 2}``), else kept as text; a dotted key
    (``client_kwargs.region_name=eu-west-1``) sets an entry of a nested dictionary, merged with
    one given whole. A key given again replaces the earlier value. Raises :class:`ConfigError`
    naming ``option`` for a pair without ``=`` or a key, and for a key given both as a value and
    as a group (in either order)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, has_value, text = pair.partition("=")
        key = key.strip()
        if not has_value or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"{option} {pair!r}: expected KEY=VALUE, for example endpoint_url=http://127.0.0.1:9000")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.split(".")
        node = options
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{option} {pair!r}: {'.'.join(parents[:depth + 1])} is given both as a value "
                                  "and as a group")
            node = child
        held = node.get(leaf)
        if isinstance(held, dict) and isinstance(value, dict):
            value = {**held, **value}
        elif leaf in node and isinstance(held, dict) != isinstance(value, dict):
            raise ConfigError(f"{option} {pair!r}: {key} is given both as a value and as a group")
        node[leaf] = value
    return options


def apply_storage_options(protocol: str, options: Mapping[str, Any]) -> None:
    """Make ``options`` the defaults of every ``protocol`` filesystem this process and the
    processes it starts open (fsspec's configuration, and its ``FSSPEC_<PROTOCOL>`` environment
    variable, which fsspec reads when a worker imports it)."""
    if not options or protocol in LOCAL_PROTOCOLS:
        return
    merged = {**fsspec.config.conf.get(protocol, {}), **options}
    fsspec.config.conf[protocol] = merged
    os.environ[f"FSSPEC_{protocol.upper()}"] = json.dumps(merged)


def filesystem(target: str | os.PathLike, option: str = "--out") -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the path within it of ``target`` (a local path or an fsspec URL; the
    scheme in any case). Raises :class:`Pseudo3DError` naming ``option`` when the protocol's
    package is missing or its filesystem cannot be made."""
    text = os.fspath(target)
    if is_local(text):
        if "://" in text:
            text = text.partition("://")[2]
        return LocalFileSystem(), os.path.abspath(os.path.expanduser(text))
    protocol = protocol_of(text)
    text = protocol + text[len(protocol):]  # S3://b/k is s3://b/k
    try:
        return fsspec.core.url_to_fs(text)
    except ImportError:
        package = BACKEND_PACKAGES.get(protocol, f"the fsspec filesystem for {protocol}://")
        extra = EXTRAS.get(protocol)
        hint = f"pip install 'pseudo3d[{extra}]'" if extra else f"pip install {package}"
        raise Pseudo3DError(f"{option} {text}: {protocol}:// needs {package}, which is not installed ({hint})") from None
    except (TypeError, AttributeError) as exc:  # keyword arguments the filesystem does not take
        raise ConfigError(f"--storage-option: the {protocol}:// filesystem refused its options "
                          f"({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - an unknown protocol, a missing native library (hdfs: libjvm)...
        raise Pseudo3DError(f"{option} {text}: {protocol}:// cannot be opened here ({type(exc).__name__}: "
                            f"{exc or 'no details'})") from None


class ObjectWriter:
    """A file being written as a stream, published whole by :meth:`close` and never published by
    :meth:`discard`. Hashes (SHA-256) and counts what goes through it, so a shard's digest needs no
    second read. Use as a context manager: a clean exit publishes, an exception discards.

    ``exclusive``: publish only if no file has the name yet; :meth:`close` raises
    ``FileExistsError`` otherwise and publishes nothing. Atomic against other writers on local
    paths (``link(2)``), S3 (``If-None-Match: *``) and GCS (``ifGenerationMatch=0``)."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str, block_size: int | None = None, *,
                 exclusive: bool = False):
        """``block_size``: the part size of a multipart upload (bytes; None: the filesystem's default)."""
        self.path = path
        self.local = isinstance(fs, LocalFileSystem)
        self.exclusive = exclusive
        self._digest = hashlib.sha256()
        self.size = 0
        self._staged: IO[bytes] | None = None
        if self.local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Exclusive writers may race for one name: each stages under a name of its own.
            self._temporary = temporary_path(Path(path), unique=exclusive)
            self._handle: IO[bytes] = open(self._temporary, "wb")
        elif set(_protocols(fs)) & set(OBJECT_STORES):
            options = {"block_size": block_size} if block_size else {}
            self._handle = fs.open(path, "xb" if exclusive else "wb", **options)
        else:  # memory:// and others show a file while it is written: stage it, copy it on close
            self._staged = tempfile.SpooledTemporaryFile(max_size=64 * 2 ** 20)
            self._handle = self._staged
        self._fs = fs
        self.closed = False

    def write(self, data) -> int:
        self._digest.update(data)
        self.size += len(data)
        self._handle.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._handle.flush()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def close(self) -> None:
        """Publish the file (a no-op once closed or discarded)."""
        if self.closed:
            return
        self.closed = True
        if self.local:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            _publish(self._temporary, Path(self.path), exclusive=self.exclusive)
        elif self._staged is not None:
            if self.exclusive and self._fs.exists(self.path):  # not atomic: these filesystems have no precondition
                self._staged.close()
                raise FileExistsError(errno.EEXIST, "exists already", self.path)
            self._staged.seek(0)
            with self._fs.open(self.path, "wb") as target:
                shutil.copyfileobj(self._staged, target, 2 ** 20)
            self._staged.close()
        else:
            self._handle.close()  # completes the upload; a failed precondition raises FileExistsError

    def discard(self) -> None:
        """Drop what was written: nothing is published (a no-op once closed)."""
        if self.closed:
            return
        self.closed = True
        if self.local:
            self._handle.close()
            self._temporary.unlink(missing_ok=True)
        else:
            discard = getattr(self._handle, "discard", None)
            if discard is not None:
                discard()  # aborts a multipart upload
            with contextlib.suppress(Exception):
                self._handle.close()

    def __enter__(self) -> "ObjectWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


class Storage:
    """A folder on any filesystem (a dataset's root, usually), addressed by relative POSIX paths
    such as ``"shards/shard-000000-00-a1b2c3d4.tar"``.

    ``root``: a local path or an fsspec URL; ``option``: the command-line option it came from, named
    in errors. Raises :class:`Pseudo3DError` when the URL's filesystem is not installed.
    """

    def __init__(self, root: str | os.PathLike, *, option: str = "--out"):
        self.fs, self.root = filesystem(root, option)
        self.option = option
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.protocol = "file" if self.is_local else protocol_of(os.fspath(root))
        self.url = self.root if self.is_local else self.fs.unstrip_protocol(self.root)
        """Where the folder is, for messages and for readers: a local path or a full URL."""

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    @property
    def name(self) -> str:
        return posixpath.basename(self.root.rstrip("/")) or self.url

    def path(self, relative: str = "") -> str:
        """The path of ``relative`` within the filesystem."""
        return posixpath.join(self.root, relative) if relative else self.root

    def url_of(self, relative: str = "") -> str:
        """A local path or a full URL of ``relative``: what other readers (webdataset, pyarrow,
        fsspec) open."""
        return self.path(relative) if self.is_local else self.fs.unstrip_protocol(self.path(relative))

    def local_path(self, relative: str = "") -> Path:
        if not self.is_local:
            raise ValueError(f"{self.url} is not a local folder")
        return Path(self.path(relative))

    def exists(self, relative: str = "") -> bool:
        return self.fs.exists(self.path(relative))

    def is_file(self, relative: str) -> bool:
        return self.fs.isfile(self.path(relative))

    def list(self, relative: str = "") -> list[str]:
        """Names (not paths) of the entries directly inside folder ``relative``, sorted; empty when
        it does not exist. Always a fresh listing, never a cached one."""
        path = self.path(relative)
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        own = path.rstrip("/")
        return sorted({posixpath.basename(entry.rstrip("/")) for entry in entries if entry.rstrip("/") != own} - {""})

    def read_bytes(self, relative: str) -> bytes:
        return self.fs.cat_file(self.path(relative))

    def read_many(self, relatives: Sequence[str]) -> Sequence[bytes]:
        """The bytes of each of ``relatives``, in their order: fetched concurrently on object
        stores (fsspec's batched ``cat``), one after another on local paths. Raises
        ``FileNotFoundError`` naming a missing one."""
        if not relatives:
            return []
        paths = [self.path(relative) for relative in relatives]
        found = self.fs.cat(paths, on_error="return")
        for relative, path in zip(relatives, paths):
            data = found.get(path) if isinstance(found, dict) else found
            if isinstance(data, BaseException) or data is None:
                raise FileNotFoundError(errno.ENOENT, f"cannot read it ({data})", self.url_of(relative))
        return [found[path] for path in paths] if isinstance(found, dict) else [found]

    def open_read(self, relative: str) -> BinaryIO:
        return self.fs.open(self.path(relative), "rb")

    def open_write(self, relative: str, block_size: int | None = None, *, exclusive: bool = False) -> ObjectWriter:
        """A writer that publishes ``relative`` whole when closed (see :class:`ObjectWriter`)."""
        return ObjectWriter(self.fs, self.path(relative), block_size, exclusive=exclusive)

    def write_bytes(self, relative: str, data: bytes, *, exclusive: bool = False) -> None:
        """Publish ``data`` as ``relative``; ``exclusive``: raise ``FileExistsError`` instead of
        replacing a file of that name (see :class:`ObjectWriter`)."""
        with self.open_write(relative, exclusive=exclusive) as writer:
            writer.write(data)

    def create(self, relative: str, data: bytes) -> bool:
        """Write ``relative`` only if no file has that name: True when this call created it,
        False when one existed (whatever its content). Atomic against concurrent creators on
        local paths, S3 and GCS: exactly one of them gets True."""
        try:
            self.write_bytes(relative, data, exclusive=True)
        except FileExistsError:
            return False
        return True

    def check(self) -> None:
        """Reach the folder once (it need not exist), so that a wrong endpoint, missing
        credentials or a filesystem option it does not take fail here, named, rather than later
        looking like a missing file. Raises :class:`ConfigError` naming ``--storage-option`` or
        :class:`Pseudo3DError` naming this folder's option."""
        if self.is_local:
            return
        try:
            self.fs.invalidate_cache(self.root)
            self.fs.info(self.root)
        except FileNotFoundError:
            return
        except (TypeError, AttributeError) as exc:
            raise ConfigError(f"--storage-option: the {self.protocol}:// filesystem refused its options "
                              f"({type(exc).__name__}: {exc})") from None
        except Exception as exc:  # noqa: BLE001 - whatever the backend raises: no route, no credentials, denied
            raise Pseudo3DError(f"{self.option} {self.url}: cannot reach it ({type(exc).__name__}: "
                                f"{exc or 'no details'})") from None

    def delete(self, relative: str) -> None:
        """Remove file ``relative``; a missing file is not an error."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(relative))

    def delete_many(self, relatives: Sequence[str]) -> None:
        """Remove the files ``relatives``; missing ones are not an error. One request per 1,000
        files on S3 (fsspec's batched ``rm``, S3's ``DeleteObjects``), in no set order; one after
        another elsewhere."""
        if not self.is_local and len(relatives) > 1:
            try:
                self.fs.rm([self.path(relative) for relative in relatives])
            except FileNotFoundError:  # a filesystem that checks each path first: one at a time below
                pass
            else:
                for relative in relatives:
                    self.fs.invalidate_cache(self.path(relative))
                return
        for relative in relatives:
            self.delete(relative)

    def delete_tree(self, relative: str) -> None:
        """Remove folder ``relative`` and everything under it; a missing folder is not an error."""
        path = self.path(relative)
        if self.is_local:
            if Path(path).is_dir():
                shutil.rmtree(path)
            else:
                Path(path).unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)

    def move(self, source: str, target: str, *, exclusive: bool = False) -> None:
        """Move file ``source`` to ``target``, replacing it: a rename on local paths (then the
        directory synced), a copy then a delete on object stores. ``exclusive``: raise
        ``FileExistsError`` instead where ``target`` exists (atomic on local paths; on object
        stores a check before the copy, which has no precondition)."""
        if self.is_local:
            Path(self.path(target)).parent.mkdir(parents=True, exist_ok=True)
            _publish(Path(self.path(source)), Path(self.path(target)), exclusive=exclusive)
            return
        if exclusive and self.fs.exists(self.path(target)):
            raise FileExistsError(errno.EEXIST, "exists already", self.url_of(target))
        self.fs.copy(self.path(source), self.path(target))
        self.fs.rm_file(self.path(source))


def write_bytes(target: str | os.PathLike, data: bytes, option: str = "--out") -> None:
    """Publish ``data`` whole as the single file ``target`` (a local path or a URL)."""
    with ObjectWriter(*filesystem(target, option)) as writer:
        writer.write(data)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def temporary_path(path: Path, unique: bool = False) -> Path:
    """The hidden temporary name a local ``path`` is written under before it is published
    (``unique``: one of this writer's own, for writers that may race for ``path``)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp" if unique else f".{path.name}.tmp")


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary name of this module's (debris if a build was interrupted)."""
    return name.startswith(".") and name.endswith(".tmp")


def fsync_directory(path: Path) -> None:
    """Make the entries of directory ``path`` (renames, new files) durable. A filesystem that
    cannot sync a directory (some network and FUSE filesystems) is left as it is."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _publish(temporary: Path, path: Path, exclusive: bool = False) -> None:
    if exclusive:
        try:
            os.link(temporary, path)  # fails on an existing name, atomically
        finally:
            temporary.unlink()
    else:
        os.replace(temporary, path)
    fsync_directory(path.parent)


def parquet_bytes(table) -> bytes:
    """``table`` (a pyarrow Table) as the bytes of a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()

