"""``pseudo3d compact``: the index parts of runs of units merged into a few parts, committed by a
compaction marker; readers (plain Parquet readers of the folders, the card, resume, --retry-failed,
QA) see the same rows before and after, and a kill at any point leaves a dataset that reads the
same (docs/data-contract.md, "Compaction")."""

import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import RUNNER_CONFIG_YAML
from pseudo3d.cli import main
from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines import compact
from pseudo3d.pipelines.compact import compact_dataset
from pseudo3d.pipelines.runners.local import build_local
from pseudo3d.pipelines.shard_writer import remove_uncommitted
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.schemas.compactions import read_layout
from pseudo3d.schemas.index import read_table
from pseudo3d.schemas.layout import INDEX_TABLES, parse_compacted_part_path
from pseudo3d.storage import Storage

pytestmark = pytest.mark.slow

CONFIG_YAML = RUNNER_CONFIG_YAML.replace("max_sources: 3", "max_sources: 1") + "limits:\n  transient_retries: 0\n"
"""The runner corpus one source a unit (7 units), failures not retried within the build."""

ATTEMPT = re.compile(r"(shard-\d{6}-\d{2})-[0-9a-f]{8}")


def _config() -> BuildConfig:
    return BuildConfig.from_dict(yaml.safe_load(CONFIG_YAML))


def _build(corpus, out, **options):
    return build_local(resolve_sources([str(corpus)]), out, _config(), workers=2, progress=False, qa_report=False,
                       **options)


@pytest.fixture(scope="module")
def reference(runner_corpus, tmp_path_factory):
    """The runner corpus built one source a unit, never compacted."""
    out = tmp_path_factory.mktemp("compact") / "ds"
    _build(runner_corpus, out)
    return out


def _copy(reference, tmp_path) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(reference, out)
    return out


def _folder_rows(out, table, drop=()) -> str:
    """Index table ``table`` as a plain Parquet reader of its folder sees it, shards' attempts
    left out (they differ between builds of the same units)."""
    rows = pq.read_table(Path(out) / table).drop_columns(list(drop)).to_pylist()
    return ATTEMPT.sub(r"\1", repr(rows))  # repr: NaN metrics compare equal


def _card_rows(out, table) -> str:
    storage = Storage(str(out))
    return repr(read_table(storage, json.loads(storage.read_bytes("dataset.json")), table).to_pylist())


def _files(out, table) -> list[str]:
    return sorted(path.name for path in (Path(out) / table).iterdir())


def test_compaction_merges_the_parts_and_every_reader_sees_the_same_rows(reference, tmp_path):
    out = _copy(reference, tmp_path)
    before = {table: (_folder_rows(out, table), _card_rows(out, table)) for table in INDEX_TABLES}
    card_before = json.loads((out / "dataset.json").read_text())
    assert len(_files(out, "sources")) == 7

    report = compact_dataset(str(out))
    assert (report.units, report.written) == (7, 1)
    assert report.parts_before == {table: len(_files(reference, table)) for table in INDEX_TABLES}
    assert report.parts_after == {"manifest": 1, "sources": 1, "failures": 1}
    for table in INDEX_TABLES:
        [name] = _files(out, table)
        assert parse_compacted_part_path(f"{table}/{name}")[1:3] == (0, 6)
        assert (_folder_rows(out, table), _card_rows(out, table)) == before[table]
    card = json.loads((out / "dataset.json").read_text())
    assert card["files"] == {**card_before["files"], **{table: [f"{table}/{_files(out, table)[0]}"]
                                                        for table in INDEX_TABLES}}
    assert card["counts"] == card_before["counts"]
    assert sorted(path.name for path in (out / "_commits").iterdir() if path.name.startswith("compact-")) != []

    listing = sorted(str(path.relative_to(out)) for path in out.rglob("*"))
    again = compact_dataset(str(out))  # nothing to do: nothing changes
    assert (again.written, again.parts_after) == (0, report.parts_after)
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*")) == listing
    assert remove_uncommitted(Storage(str(out))) == []


def test_max_rows_cuts_runs_in_unit_order_and_a_later_compaction_replaces_them(reference, tmp_path):
    out = _copy(reference, tmp_path)
    before = {table: _folder_rows(out, table) for table in INDEX_TABLES}
    compact_dataset(str(out), max_rows=3)
    layout = read_layout(Storage(str(out)))
    runs = [(compaction.first, compaction.last) for compaction in layout.compactions]
    alone = [(commit.unit, commit.unit) for commit in layout.commits if layout.covering(commit) is None]
    assert runs and alone  # a unit of more than 3 rows stays as it is
    pieces = sorted(runs + alone)
    assert pieces[0][0] == 0 and pieces[-1][1] == 6
    assert all(after[0] == before[1] + 1 for before, after in zip(pieces, pieces[1:]))  # contiguous, in order
    assert all(rows <= 3 for compaction in layout.compactions for rows in compaction.rows.values())
    assert {table: _folder_rows(out, table) for table in INDEX_TABLES} == before

    compact_dataset(str(out))  # all of them into one run: the compactions it replaces are deleted
    [compaction] = read_layout(Storage(str(out))).compactions
    assert (compaction.first, compaction.last) == (0, 6) and len(compaction.replaces) == len(runs)
    assert sorted(name for name in _files(out, "_commits") if name.startswith("compact-")) == \
        [compaction.path.split("/")[1]]
    assert all(len(_files(out, table)) == 1 for table in INDEX_TABLES)
    assert {table: _folder_rows(out, table) for table in INDEX_TABLES} == before


def test_a_resume_after_compaction_adds_units_beside_it_and_retries_in_place(runner_corpus, reference, tmp_path,
                                                                              monkeypatch):
    """Three inputs built (one crashes), compacted, then the rest added and the crash retried: the
    rows equal the reference's, in unit order, once each for a plain reader too."""
    corpus = tmp_path / runner_corpus.name  # the same identities, so the same rows as the reference
    corpus.mkdir()
    inputs = sorted(runner_corpus.glob("*.mp4"))
    for video in inputs[:3]:
        shutil.copy(video, corpus / video.name)
    out = tmp_path / "ds"
    monkeypatch.setenv("PSEUDO3D_FAULTS", "crash=01_")
    _build(corpus, out)
    monkeypatch.delenv("PSEUDO3D_FAULTS")
    compact_dataset(str(out))
    assert [row["status"] for row in pq.read_table(out / "sources").to_pylist() if "/01_" in row["identity"]] == \
        ["failed"]

    for video in inputs[3:]:
        shutil.copy(video, corpus / video.name)
    report = _build(corpus, out, retry_failed="transient")
    assert (report.skipped, report.processed) == (2, len(inputs) - 2)
    for table in INDEX_TABLES:
        drop = ("attempt",) if table == "sources" else ()
        assert _folder_rows(out, table, drop) == _folder_rows(reference, table, drop)
        assert _card_rows(out, table) == repr(pq.read_table(out / table).to_pylist())
    assert not read_layout(Storage(str(out))).stale()  # the retried unit's run was compacted again
    assert remove_uncommitted(Storage(str(out))) == []
    compact_dataset(str(out))
    assert all(len(_files(out, table)) == 1 for table in INDEX_TABLES)
    assert _folder_rows(out, "manifest") == _folder_rows(reference, "manifest")


def test_a_lost_compacted_part_is_refused_then_its_units_are_rebuilt(runner_corpus, reference, tmp_path, capsys):
    out = _copy(reference, tmp_path)
    compact_dataset(str(out), max_rows=3)
    lost = next(path for path in sorted((out / "manifest").iterdir()) if parse_compacted_part_path(f"manifest/{path.name}"))
    first, last = parse_compacted_part_path(f"manifest/{lost.name}")[1:3]
    lost.unlink()
    assert main(["compact", str(out)]) == 2
    assert f"unit(s) of {out} lost files (unit {first} first): run the build again" in capsys.readouterr().err

    with pytest.raises(Pseudo3DError, match=f"unit.s. of {out} had lost files .unit {first} first.; they were removed "
                                            "from the dataset: run the same command again to rebuild them"):
        _build(runner_corpus, out)  # a resume reads no marker: the end of the build finds them
    report = _build(runner_corpus, out)
    assert report.processed == last - first + 1
    for table in INDEX_TABLES:
        assert _folder_rows(out, table) == _folder_rows(reference, table)
    assert remove_uncommitted(Storage(str(out))) == []


def test_a_compaction_killed_before_its_marker_leaves_debris_only(reference, tmp_path, monkeypatch):
    out = _copy(reference, tmp_path)
    before = {table: _folder_rows(out, table) for table in INDEX_TABLES}

    create = Storage.create

    def killed(self, relative, data):
        if relative.startswith("_commits/compact-"):
            raise KeyboardInterrupt  # SIGINT between the parts and the marker: its own parts are deleted
        return create(self, relative, data)

    monkeypatch.setattr(Storage, "create", killed)
    with pytest.raises(KeyboardInterrupt):
        compact_dataset(str(out))
    assert {table: _folder_rows(out, table) for table in INDEX_TABLES} == before

    monkeypatch.setattr(compact, "_delete", lambda storage, paths: None)  # SIGKILL: nothing cleaned up
    with pytest.raises(KeyboardInterrupt):
        compact_dataset(str(out))
    debris = [f"{table}/{name}" for table in INDEX_TABLES for name in _files(out, table)
              if parse_compacted_part_path(f"{table}/{name}")]
    assert len(debris) == 3
    assert _card_rows(out, "manifest") == repr(pq.read_table(reference / "manifest").to_pylist())
    monkeypatch.undo()
    assert sorted(remove_uncommitted(Storage(str(out)))) == sorted(debris)  # as the next build or compaction does
    assert {table: _folder_rows(out, table) for table in INDEX_TABLES} == before


def test_a_compaction_killed_after_its_marker_is_finished_by_the_next_one(reference, tmp_path, monkeypatch):
    out = _copy(reference, tmp_path)
    before = {table: _folder_rows(out, table) for table in INDEX_TABLES}
    monkeypatch.setattr(compact, "_delete", lambda storage, paths: None)  # killed before deleting what it replaced
    compact_dataset(str(out))
    monkeypatch.undo()
    for table in INDEX_TABLES:  # the card and the markers read right; the folders hold the old parts too
        assert _card_rows(out, table) == repr(pq.read_table(reference / table).to_pylist())
        assert len(_files(out, table)) == len(_files(reference, table)) + 1
    report = compact_dataset(str(out))
    assert report.written == 0
    assert {table: _folder_rows(out, table) for table in INDEX_TABLES} == before
    assert all(len(_files(out, table)) == 1 for table in INDEX_TABLES)


def test_compaction_on_an_s3_compatible_server(reference, s3_bucket, capsys):
    out = f"{s3_bucket}/ds"
    storage = Storage(out)
    for path in sorted(reference.rglob("*")):
        if path.is_file():
            storage.write_bytes(str(path.relative_to(reference)), path.read_bytes())
    assert main(["compact", out]) == 0
    counts = ", ".join(f"{table} {len(_files(reference, table))} -> 1" for table in INDEX_TABLES)
    printed = capsys.readouterr()
    assert f"parts: {counts}" in printed.out and "compact: 100%" in printed.err and "7/7" in printed.err  # units merged
    card = json.loads(storage.read_bytes("dataset.json"))
    for table in INDEX_TABLES:
        assert storage.list(table) == [card["files"][table][0].split("/")[1]]
        rows = read_table(storage, card, table).to_pylist()
        assert repr(rows) == repr(pq.read_table(reference / table).to_pylist())


def test_a_compaction_marker_naming_files_outside_its_run_is_refused(runner_corpus, reference, tmp_path, capsys):
    out = _copy(reference, tmp_path)
    compact_dataset(str(out), max_rows=3)
    markers = sorted((out / "_commits").glob("compact-*.json"))
    stats = json.loads(markers[0].read_text())
    stats["parts"]["manifest"] = ["shards/" + sorted(path.name for path in (out / "shards").iterdir())[0]]
    markers[0].write_text(json.dumps(stats))
    assert main(["compact", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{markers[0]} is not a compaction marker" in err and "not a manifest part of the compaction of units" in err
    assert err.count("\n") == 1
    with pytest.raises(Pseudo3DError, match="is not a compaction marker"):
        _build(runner_corpus, out)  # nothing is read or deleted on its word


def test_two_live_compactions_of_one_unit_are_refused(reference, tmp_path, capsys):
    out = _copy(reference, tmp_path)
    compact_dataset(str(out), max_rows=3)
    marker = sorted((out / "_commits").glob("compact-*.json"))[0]
    shutil.copy(marker, marker.with_name(marker.name[:-len("000000000000.json")] + "000000000000.json"))
    assert main(["compact", str(out)]) == 2
    first = int(marker.name.split("-")[1])
    assert f"both compact unit {first}: two processes wrote into this dataset at once" in capsys.readouterr().err


def test_compact_refuses_what_is_not_a_finished_dataset_of_contract_4(reference, tmp_path, capsys):
    assert main(["compact", str(tmp_path)]) == 2
    assert f"{tmp_path} has no dataset.json: it is not a pseudo3d dataset" in capsys.readouterr().err
    out = _copy(reference, tmp_path)
    listing = sorted(str(path) for path in out.rglob("*"))
    card = (out / "dataset.json").read_text()

    (out / "dataset.json").unlink()  # a first build running, or stopped before its card
    assert main(["compact", str(out)]) == 2
    assert "has no dataset.json yet: its first build is running, or stopped before it finished" in capsys.readouterr().err
    for broken, reason in (("{", "Expecting property name"), ("[]", "not a JSON object with 'files'")):
        (out / "dataset.json").write_text(broken)
        assert main(["compact", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{out / 'dataset.json'} is not a pseudo3d card ({reason}" in err and err.count("\n") == 1
    stopped = json.loads(card)  # the card of a build before the last one, stopped after it committed units
    stopped["counts"]["units"] -= 1
    stopped["files"]["shards"] = stopped["files"]["shards"][:-1]
    (out / "dataset.json").write_text(json.dumps(stopped))
    assert main(["compact", str(out)]) == 2
    assert "is older than the dataset's commit markers (it counts 6 units, the markers 7): a build was stopped " \
        "before it finished; run it again" in capsys.readouterr().err
    (out / "dataset.json").write_text(card)
    assert sorted(str(path) for path in out.rglob("*")) == listing  # refused before anything changed

    card = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**card, "schema_version": 3}))
    assert main(["compact", str(out)]) == 2
    assert "is of data contract version 3, whose index is one file per table" in capsys.readouterr().err
    for value, message in (("0", "must be >= 1, got 0"), ("abc", "must be a whole number, got 'abc'")):
        with pytest.raises(SystemExit):
            main(["compact", str(out), "--max-rows", value])
        assert f"argument --max-rows: {message}" in capsys.readouterr().err


def test_a_compaction_marker_whose_contents_disagree_with_its_name_is_refused(reference, tmp_path, capsys):
    out = _copy(reference, tmp_path)
    compact_dataset(str(out), max_rows=3)
    marker = sorted((out / "_commits").glob("compact-*.json"))[0]
    stats = json.loads(marker.read_text())
    for key, value, message in (("last", stats["last"] + 1, "it says it is a compaction of units"),
                                ("schema_version", 99, "data contract version (99)"),
                                ("rows", {"manifest": -1}, "its rows are not counts")):
        marker.write_text(json.dumps({**stats, key: value}))
        assert main(["compact", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{marker} is not a compaction marker" in err and message in err, err
