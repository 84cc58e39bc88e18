import json

import pytest

from pseudo3d.config import BuildConfig, ShardConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.output_dir import prepare_output
from pseudo3d.pipelines.shard_writer import ShardWriter
from pseudo3d.schemas.records import Failure, Source, SourceOutcome
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage


def _dataset(out, fingerprint):
    source = Source(uri="/v/a.mp4", identity="v/a.mp4", source_id="v-a-0000000000000000")
    writer = ShardWriter(Storage(out), ShardConfig(), fingerprint)
    writer.add(SourceOutcome(source, "failed", failures=[Failure(source.source_id, source.uri, "probe", "missing", "y")]))
    writer.close()
    return out / "shards" / "shard-000000.json"


def test_a_resume_under_the_same_configuration_skips_committed_sources(tmp_path):
    config = BuildConfig()
    _dataset(tmp_path / "ds", config.fingerprint())
    state = prepare_output(Storage(tmp_path / "ds"), config)
    assert state.done_source_ids == {"v-a-0000000000000000"}


def test_shards_of_another_data_contract_version_are_refused(tmp_path):
    config = BuildConfig()
    marker = _dataset(tmp_path / "ds", config.fingerprint())
    stats = json.loads(marker.read_text())
    assert stats["schema_version"] == SCHEMA_VERSION == 2
    marker.write_text(json.dumps({**stats, "schema_version": 1}))
    with pytest.raises(Pseudo3DError, match="holds shards of data contract version 1; this pseudo3d writes "
                                            "version 2.*--overwrite"):
        prepare_output(Storage(tmp_path / "ds"), config)
    assert prepare_output(Storage(tmp_path / "ds"), config, overwrite=True).shards == []


def test_shards_of_another_configuration_are_refused(tmp_path):
    _dataset(tmp_path / "ds", "0123456789abcdef")
    with pytest.raises(Pseudo3DError, match="different configuration .fingerprint 0123456789abcdef"):
        prepare_output(Storage(tmp_path / "ds"), BuildConfig())


def test_a_resume_knows_what_the_committed_outputs_were_computed_with(tmp_path):
    numerics = {"reconstruct": {"device": "cpu", "precision": "fp32"}}
    source = Source(uri="/v/a.mp4", identity="v/a.mp4", source_id="v-a-0000000000000000")
    writer = ShardWriter(Storage(tmp_path / "ds"), ShardConfig(), BuildConfig().fingerprint())
    writer.add(SourceOutcome(source, "failed", numerics=numerics,
                             failures=[Failure(source.source_id, source.uri, "qa", "confidence_mean", "low")]))
    writer.close()
    assert prepare_output(Storage(tmp_path / "ds"), BuildConfig()).numerics == numerics


def test_a_remote_dataset_s_scratch_folder_falls_back_to_the_temporary_folder(tmp_path, monkeypatch):
    from pseudo3d.pipelines.output_dir import scratch_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    storage = Storage("memory://bucket/ds")
    assert scratch_dir(storage).parent == tmp_path / "cache" / "pseudo3d" / "builds"
    (tmp_path / "blocked").write_text("a file, not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    assert scratch_dir(storage) == tmp_path / "tmp" / "pseudo3d-builds" / scratch_dir(storage).name
