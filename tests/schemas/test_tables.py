"""The index tables' schemas: every unit's part types its columns the same way."""

import pyarrow as pa
import pyarrow.parquet as pq

from pseudo3d.schemas.tables import MANIFEST_BASE_SCHEMA, manifest_table


def test_a_metric_null_in_every_row_of_a_unit_is_float64_so_the_parts_read_as_one_table(tmp_path):
    units = [[{"key": "a_000", "n_frames": 50, "av_offset_s": None}],  # a silent clip: no AV offset
             [{"key": "b_000", "n_frames": 60, "av_offset_s": 0.04}]]
    for index, rows in enumerate(units):
        pq.write_table(manifest_table(rows), tmp_path / f"part-{index:06d}-00000000.parquet")
    table = pq.read_table(tmp_path)  # the first part's schema decides for the folder
    assert table.schema.field("av_offset_s").type == pa.float64()
    assert table["av_offset_s"].to_pylist() == [None, 0.04] and table["n_frames"].to_pylist() == [50, 60]
    assert table.schema.names[:len(MANIFEST_BASE_SCHEMA)] == MANIFEST_BASE_SCHEMA.names


def test_a_column_only_later_rows_have_is_kept():
    rows = [{"key": "a_000", "n_frames": 50}, {"key": "b_000", "n_frames": 60, "speaker": "bob"}]
    assert manifest_table(rows)["speaker"].to_pylist() == [None, "bob"]
