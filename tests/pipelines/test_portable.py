"""Datasets hold no local path: the same corpus at two paths builds to the same bytes, and the QA
report is drawn from the dataset alone."""

import shutil

import pytest
from conftest import dataset_digests

from pseudo3d.config import BuildConfig
from pseudo3d.pipelines.runners.local import build_local
from pseudo3d.pipelines.sources import resolve_sources

pytestmark = pytest.mark.slow

NAMES = ("00_talk_25fps.mp4", "bad_not_a_video.mp4")  # a kept clip, and a failure row with a message


def _build(corpus, out):
    config = BuildConfig().with_overrides(qa={"enabled": False})
    build_local(resolve_sources([str(corpus)]), out, config, workers=1, progress=False)
    return out


def test_the_same_corpus_at_two_paths_gives_byte_identical_datasets(synthetic_corpus, tmp_path, capsys):
    from pseudo3d.cli import main

    corpora = [tmp_path / "first" / "corpus", tmp_path / "second" / "deeper" / "corpus"]
    for corpus in corpora:
        corpus.mkdir(parents=True)
        for name in NAMES:
            shutil.copy(synthetic_corpus / name, corpus / name)
    datasets = [_build(corpus, tmp_path / f"ds{index}") for index, corpus in enumerate(corpora)]
    digests = [dataset_digests(dataset) for dataset in datasets]  # shard names differ only in their attempt
    assert sorted(digests[0]) == ["failures/part-000000.parquet", "manifest/part-000000.parquet",
                                  "shards/shard-000000-00.tar", "sources/part-000000.parquet"]
    assert digests[0] == digests[1]
    for dataset in datasets:
        for path in dataset.rglob("*"):  # the card, markers and report too; only the build's own log names where it ran
            if path.is_file() and path.relative_to(dataset).parts[0] != "logs":
                assert str(tmp_path).encode() not in path.read_bytes(), path

    # The report is drawn from the dataset alone: without the videos, wherever the dataset goes.
    shutil.rmtree(tmp_path / "first")
    moved = tmp_path / "elsewhere"
    shutil.move(datasets[0], moved)
    assert main(["qa", str(moved), "--gallery", "2"]) == 0, capsys.readouterr().err
    page = (moved / "qa" / "report.html").read_text()
    assert page.count("<figcaption>source frame at ") == 1 and "no thumbnail" not in page and "cannot be read" not in page
