"""The corpus recipes in configs/corpora: each loads, is documented in docs/real-corpora.md, and
builds synthetic footage framed like its corpus (tight 224 crops, plain talking heads, full-HD
studio frames at 30 fps) into kept clips with the options it sets."""

import json
from fractions import Fraction
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pseudo3d.config import BuildConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "configs" / "corpora"
NAMES = ("lrs3-voxceleb2", "hdtf-celebvhq", "mead")


def test_every_recipe_loads_and_is_documented():
    found = sorted(path.stem for path in RECIPES.glob("*.yaml"))
    assert found == sorted(NAMES)
    page = (ROOT / "docs" / "real-corpora.md").read_text()
    for name in NAMES:
        config = BuildConfig.from_yaml(RECIPES / f"{name}.yaml")
        assert config.fingerprint() != BuildConfig().fingerprint()  # it changes something
        assert f"configs/corpora/{name}.yaml" in page


@pytest.fixture(scope="module")
def studio_video(tmp_path_factory):
    """A 3 s full-HD, 30 fps talking head with audio: the frame MEAD's front camera records."""
    from pseudo3d.logs import native_stderr_silenced
    from pseudo3d.synth.talking import VideoSpec, render_talking_video

    folder = tmp_path_factory.mktemp("studio")
    spec = VideoSpec(name="studio_1080p30", scenario="talk", seed=7, index=0, fps=Fraction(30),
                     width=1920, height=1080, duration_s=3.0)
    with native_stderr_silenced():
        return render_talking_video(spec, folder)


def _build(video: Path, recipe: str, out: Path) -> tuple[dict, list[dict]]:
    from pseudo3d.cli import main

    assert main(["build", str(video), "--out", str(out), "--config", str(RECIPES / f"{recipe}.yaml"),
                 "--workers", "1", "-q"]) == 0
    card = json.loads((out / "dataset.json").read_text())
    return card, pq.read_table(out / "manifest").to_pylist()


@pytest.mark.slow
@pytest.mark.parametrize("recipe, video", [("lrs3-voxceleb2", "framing_tight_224.mp4"),
                                           ("hdtf-celebvhq", "00_talk_25fps.mp4")])
def test_recipe_keeps_its_kind_of_footage(framing_corpus, recipe, video, tmp_path):
    card, rows = _build(framing_corpus / video, recipe, tmp_path / "ds")
    expected = BuildConfig.from_yaml(RECIPES / f"{recipe}.yaml")
    assert card["config"]["track"]["min_clip_s"] == expected.track.min_clip_s
    assert card["config"]["track"]["find_rotated_faces"] is False
    assert card["counts"]["ok"] == 1 and len(rows) >= 1
    assert all(row["confidence_mean"] >= expected.qa.min_confidence_mean for row in rows)


@pytest.mark.slow
def test_mead_recipe_keeps_full_hd_studio_footage_at_25_fps(studio_video, tmp_path):
    card, rows = _build(studio_video, "mead", tmp_path / "ds")
    assert card["counts"]["ok"] == 1 and len(rows) == 1
    [row] = rows
    assert row["fps"] == 25.0 and row["n_frames"] == 75  # 3 s of 30 fps frames, picked by time onto 25 fps
    assert card["config"]["track"]["min_clip_s"] == 1.5 and card["config"]["decode"]["fps"] == 25.0
