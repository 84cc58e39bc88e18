"""Reading a dataset's index tables, ``manifest``, ``sources`` and ``failures``, whatever its data
contract (docs/data-contract.md, "The index").

Since data contract 4 each table is a Parquet dataset, a folder of parts (one per unit writer,
named by the unit's commit marker and listed in the card's ``files``, or one per run of units that
``pseudo3d compact`` merged: :mod:`pseudo3d.schemas.compactions`); data contracts 2 and 3 kept one
file per table at the root. Parts are read a batch at a time, only the columns asked for, and
joined with Arrow; parts whose columns differ (a metadata column no source of a unit has, a metric
null throughout a unit) are unified by name.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pseudo3d.errors import Pseudo3DError
from pseudo3d.schemas.compactions import IndexLayout, Part, read_layout
from pseudo3d.schemas.sample import to_jsonable
from pseudo3d.schemas.layout import (COMMIT_DIR, INDEX_TABLES, LEASE, legacy_table_file, parse_compacted_part_path,
                                     parse_part_path)
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


CARD = "dataset.json"
"""The dataset's card, at its root."""


def read_card(storage: Storage) -> dict[str, Any]:
    """The card of the dataset at ``storage``. Raises :class:`Pseudo3DError` where there is none
    (saying whether a first build is unfinished or this is not a dataset) or it is not a card."""
    if not storage.is_file(CARD):
        if storage.is_file(LEASE) or storage.list(COMMIT_DIR):
            raise Pseudo3DError(f"{storage.url} has no {CARD} yet: its first build is running, or stopped before it "
                                "finished (run the same build command again to finish it)")
        raise Pseudo3DError(f"{storage.url} has no {CARD}: it is not a pseudo3d dataset")
    try:
        card = json.loads(storage.read_bytes(CARD))
        if not isinstance(card, dict) or not isinstance(card.get("files"), dict):
            raise ValueError("not a JSON object with 'files'")
    except ValueError as exc:  # JSONDecodeError is one
        raise Pseudo3DError(f"{storage.url_of(CARD)} is not a pseudo3d card ({exc}); run the build again to "
                            "write it from the commit markers") from None
    return card


def write_card(storage: Storage, card: dict[str, Any]) -> None:
    """Write the card ``card`` of the dataset at ``storage``: indented JSON, sorted keys."""
    storage.write_bytes(CARD, (json.dumps(to_jsonable(card), indent=2, sort_keys=True) + "\n").encode())


def index_files(layout: IndexLayout) -> dict[str, list[str]]:
    """The card's lists of the index tables' files (its ``files``): the parts holding the live
    units' rows, by unit (:meth:`~pseudo3d.schemas.compactions.IndexLayout.parts`)."""
    return {table: [path for path, _ in layout.parts(table)] for table in INDEX_TABLES}


def table_files(card: dict[str, Any], table: str, where: str = "dataset.json") -> list[str]:
    """The files of index table ``table`` that the card ``card`` (``dataset.json``) lists, paths
    relative to the dataset root: its parts (data contract 4) or its one file (2 and 3). Raises
    :class:`Pseudo3DError` naming the card, ``where``, when it lists none (not a pseudo3d card)."""
    if table not in INDEX_TABLES:
        raise ValueError(f"no index table {table!r}; the tables are {', '.join(INDEX_TABLES)}")
    listed = card.get("files", {}).get(table) if isinstance(card.get("files"), dict) else None
    if listed is None:
        raise Pseudo3DError(f"{where} lists no files of the {table} table (not a pseudo3d card, or a build "
                            "that never finished)")
    paths = [listed] if isinstance(listed, str) else list(listed)
    for path in paths:  # only the table's own files: a card never makes pseudo3d read outside its dataset
        part = parse_part_path(path) or parse_compacted_part_path(path)
        if path != legacy_table_file(table) and (part is None or part[0] != table):
            raise Pseudo3DError(f"{where} lists {path!r} as a file of the {table} table; its files are "
                                f"{table}/part-UUUUUU-ATTEMPT.parquet and {table}/part-AAAAAA-BBBBBB-ATTEMPT.parquet "
                                f"(or {legacy_table_file(table)} before data contract 4)")
    return paths


def parts_table(parts: Iterable[tuple[str, bytes]], table: str, columns: Sequence[str] | None = None,
                kept: Mapping[str, frozenset[int] | None] | None = None) -> pa.Table:
    """Parquet files ``parts`` ((name for messages, bytes) pairs: parts of index table ``table``) as
    one table, in their order; with ``columns``, only those of them the parts have; ``kept``: for
    a part named there, only the rows of those units (its ``unit`` column), None for all. No parts:
    the table's empty schema (:data:`EMPTY`). Parts are decoded on :data:`DECODE_THREADS` threads.
    Raises :class:`Pseudo3DError` naming a part that is not Parquet."""
    kept = kept or {}

    def decode(part: tuple[str, bytes]) -> pa.Table:
        name, data = part
        units = kept.get(name)
        try:
            file = pq.ParquetFile(pa.BufferReader(data))
            wanted = None if columns is None else [column for column in columns if column in file.schema_arrow.names]
            if units is None:
                return file.read(columns=wanted, use_threads=False)
            rows = file.read(columns=None if wanted is None else [*wanted, "unit"], use_threads=False)
            rows = rows.filter(pc.is_in(rows.column("unit"), pa.array(sorted(units), rows.schema.field("unit").type)))
            return rows if wanted is None or "unit" in wanted else rows.drop_columns(["unit"])
        except (pa.ArrowException, OSError, KeyError) as exc:
            raise Pseudo3DError(f"{name} is not a readable Parquet file ({exc}); delete the "
                                "commit marker of its unit (_commits/unit-UUUUUU-*.json, UUUUUU as in its name; "
                                "_commits/compact-AAAAAA-BBBBBB-*.json for a compacted part) and build again to "
                                "rebuild the units") from None

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        tables = list(pool.map(decode, parts))
    if not tables:
        empty = EMPTY[table]
        return empty.empty_table() if columns is None else pa.schema(
            [field for field in empty if field.name in columns]).empty_table()
    try:
        return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        raise Pseudo3DError(f"the {table} table's parts do not agree on their columns ({exc})") from None


def read_parts(storage: Storage, parts: Sequence[str | Part], table: str, columns: Sequence[str] | None = None) -> pa.Table:
    """The parts ``parts`` of index table ``table`` in ``storage`` as one table
    (:func:`parts_table`), fetched :data:`PART_BATCH` at a time: paths relative to its root, or
    (path, units to keep or None) pairs (:meth:`~pseudo3d.schemas.compactions.IndexLayout.parts`).
    Raises ``FileNotFoundError`` naming a missing part."""
    pairs = [(part, None) if isinstance(part, str) else part for part in parts]
    kept = {storage.url_of(path): units for path, units in pairs if units is not None}
    paths = [path for path, _ in pairs]
    batches = ((paths[start:start + PART_BATCH], storage.read_many(paths[start:start + PART_BATCH]))
               for start in range(0, len(paths), PART_BATCH))
    return parts_table(((storage.url_of(path), data) for names, batch in batches for path, data in zip(names, batch)),
                       table, columns, kept)


def read_table(storage: Storage, card: dict[str, Any], table: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Index table ``table`` of the dataset at ``storage`` whose card is ``card``, as the card lists
    it (:func:`table_files`). Where a part the card lists is gone (a build running, or killed, after
    ``--retry-failed`` committed a unit again, or ``pseudo3d compact`` merged parts), the parts
    the live commit markers and compactions name instead.
    Raises :class:`Pseudo3DError` naming a file that is missing or not Parquet."""
    paths = table_files(card, table, storage.url_of(CARD))
    try:
        try:
            return read_parts(storage, paths, table, columns)
        except FileNotFoundError as exc:
            if isinstance(card["files"][table], str):  # data contracts 2 and 3: one file, no parts
                raise
            log.warning("%s: the card lists a part that is gone (%s); reading the %s table from the commit markers, "
                        "newer than the card (a build or `pseudo3d compact` changed the index since it was written)",
                        storage.url, exc.filename, table)
            return read_parts(storage, read_layout(storage).parts(table), table, columns)
    except FileNotFoundError as exc:
        raise Pseudo3DError(f"{exc.filename or storage.url}: a file of the dataset's {table} table cannot be read "
                            "(a dataset copied in part?)") from None
