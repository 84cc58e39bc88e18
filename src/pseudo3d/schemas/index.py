"""Reading a dataset's index tables, ``manifest``, ``sources`` and ``failures``, whatever its data
contract (docs/data-contract.md, "The index").

Since data contract 4 each table is a Parquet dataset, a folder of parts (one per unit writer,
named by the unit's commit marker and listed in the card's ``files``); data contracts 2 and 3 kept
one file per table at the root. Parts are read a batch at a time, only the columns asked for, and
joined with Arrow; parts whose columns differ (a metadata column no source of a unit has, a metric
null throughout a unit) are unified by name.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pseudo3d.errors import Pseudo3DError
from pseudo3d.schemas.commits import read_commits
from pseudo3d.schemas.layout import INDEX_TABLES
from pseudo3d.schemas.tables import FAILURES_SCHEMA, MANIFEST_BASE_SCHEMA, SOURCES_SCHEMA
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)

PART_BATCH = 64
"""Parts fetched concurrently at a time."""
DECODE_THREADS = min(8, os.cpu_count() or 1)
"""Threads decoding parts (Arrow's decoding releases the GIL): many small parts decode one after
another at about 0.4 ms each."""

EMPTY = {"manifest": MANIFEST_BASE_SCHEMA, "sources": SOURCES_SCHEMA, "failures": FAILURES_SCHEMA}
"""Each table's schema when it has no parts (a build that kept no clip writes no manifest part)."""


def table_files(card: dict[str, Any], table: str, where: str = "dataset.json") -> list[str]:
    """The files of index table ``table`` that the card ``card`` (``dataset.json``) lists, paths
    relative to the dataset root: its parts (data contract 4) or its one file (2 and 3). Raises
    :class:`Pseudo3DError` naming the card, ``where``, when it lists none (not a pseudo3d card)."""
    if table not in INDEX_TABLES:
        raise ValueError(f"no index table {table!r}; the tables are {', '.join(INDEX_TABLES)}")
    listed = card.get("files", {}).get(table)
    if listed is None:
        raise Pseudo3DError(f"{where} lists no files of the {table} table (not a pseudo3d card, or a build "
                            "that never finished)")
    return [listed] if isinstance(listed, str) else list(listed)


def parts_table(parts: Iterable[bytes], table: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Parquet files' bytes ``parts`` (parts of index table ``table``) as one table, in their
    order; with ``columns``, only those of them the parts have. No parts: the table's empty schema
    (:data:`EMPTY`). Parts are decoded on :data:`DECODE_THREADS` threads. Raises
    ``pyarrow.ArrowInvalid`` for bytes that are not Parquet."""
    def decode(data: bytes) -> pa.Table:
        part = pq.ParquetFile(pa.BufferReader(data))
        wanted = None if columns is None else [name for name in columns if name in part.schema_arrow.names]
        return part.read(columns=wanted, use_threads=False)

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        tables = list(pool.map(decode, parts))
    if not tables:
        empty = EMPTY[table]
        return empty.empty_table() if columns is None else pa.schema(
            [field for field in empty if field.name in columns]).empty_table()
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def read_parts(storage: Storage, paths: Sequence[str], table: str, columns: Sequence[str] | None = None) -> pa.Table:
    """The parts ``paths`` of index table ``table`` in ``storage`` as one table
    (:func:`parts_table`), fetched :data:`PART_BATCH` at a time. Raises ``FileNotFoundError``
    naming a missing part."""
    batches = (storage.read_many(paths[start:start + PART_BATCH]) for start in range(0, len(paths), PART_BATCH))
    return parts_table((data for batch in batches for data in batch), table, columns)


def read_table(storage: Storage, card: dict[str, Any], table: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Index table ``table`` of the dataset at ``storage`` whose card is ``card``, as the card lists
    it (:func:`table_files`). Where a part the card lists is gone (a build running, or killed, after
    ``--retry-failed`` committed a unit again), the parts the live commit markers name instead.
    Raises :class:`Pseudo3DError` naming a file that is missing or not Parquet."""
    paths = table_files(card, table, storage.url_of("dataset.json"))
    try:
        try:
            return read_parts(storage, paths, table, columns)
        except FileNotFoundError as exc:
            if isinstance(card["files"][table], str):  # data contracts 2 and 3: one file, no parts
                raise
            log.warning("%s: the card lists a part that is gone (%s); reading the %s table from the commit markers, "
                        "newer than the card (a build has committed since it was written)",
                        storage.url, exc.filename, table)
            return read_parts(storage, [path for commit in read_commits(storage) for path in commit.parts(table)],
                              table, columns)
    except FileNotFoundError as exc:
        raise Pseudo3DError(f"{exc.filename or storage.url}: a file of the dataset's {table} table cannot be read "
                            "(a dataset copied in part?)") from None
    except pa.ArrowInvalid as exc:
        raise Pseudo3DError(f"{storage.url}: a file of the {table} table is not Parquet ({exc})") from None
