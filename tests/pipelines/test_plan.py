"""The build plan written into a dataset for workers to read (the Beam runner's)."""

import datetime as dt

from pseudo3d.pipelines.plan import PLAN_PART_SOURCES, plan_units, read_plan_part, remove_plan, write_plan
from pseudo3d.schemas.records import Source
from pseudo3d.storage import Storage


def _source(index, metadata, size_bytes=None):
    return Source(uri=f"/corpus/{index}.mp4", identity=f"{index}.mp4", source_id=f"s{index}-0000000000000000",
                  metadata=metadata, attempt=1 + index % 2, reference=f"corpus/{index}.mp4", size_bytes=size_bytes)


def test_units_are_cut_by_sources_and_by_input_bytes():
    """A unit closes before a source that would take it past either bound; a source larger than
    the byte bound is a unit alone; a size not known counts 0."""
    sizes = [4, 4, 4, None, 11, 1, 1, 1, 1, 1, None, 2]
    sources = [_source(index, {}, size) for index, size in enumerate(sizes)]
    units = plan_units(sources, 4, "fp", first=3, max_bytes=10)
    assert [[sizes[int(source.source_id[1:].split("-")[0])] for source in unit.sources] for unit in units] == \
        [[4, 4], [4, None], [11], [1, 1, 1, 1], [1, None, 2]]
    assert [unit.index for unit in units] == [3, 4, 5, 6, 7]
    assert [len(unit.sources) for unit in plan_units(sources, 4, "fp")] == [4, 4, 4]  # no byte bound


def test_a_written_plan_reads_back_as_the_same_sources_in_parts(tmp_path):
    """List-file metadata keeps its values, types and key order, and a source without a key has
    none (not a null)."""
    sources = [_source(0, {"speaker": "ann", "take": 3}, 123_456_789_012),
               _source(1, {"recorded": dt.datetime(2020, 5, 1), "speaker": "bob"}),
               *(_source(index, {}) for index in range(2, PLAN_PART_SOURCES + 5))]
    units = plan_units(sources, 100, "fp")
    storage = Storage(tmp_path)
    parts = write_plan(storage, units, "0123abcd")
    assert parts == ["_plan/0123abcd/part-000000.parquet", "_plan/0123abcd/part-000001.parquet"]
    read = [item for part in parts for item in read_plan_part(storage, part)]
    assert read == [(unit.index, position, source) for unit in units for position, source in enumerate(unit.sources)]
    assert list(read[1][2].metadata) == ["recorded", "speaker"] and read[2][2].metadata == {}
    remove_plan(storage)
    assert not (tmp_path / "_plan").exists()


def test_a_plan_without_metadata_is_written(tmp_path):
    units = plan_units([_source(index, {}) for index in range(3)], 2, "fp")
    [part] = write_plan(Storage(tmp_path), units, "0123abcd")
    assert [(unit, position) for unit, position, _ in read_plan_part(Storage(tmp_path), part)] == [(0, 0), (0, 1), (1, 0)]
