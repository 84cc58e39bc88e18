"""FinetuneWindows on the synthetic VOCASET and BEAT datasets, and their readers' errors."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from pseudo3d.errors import AssetError  # noqa: E402
from pseudo3d.testing.beat import write_synthetic_beat  # noqa: E402
from pseudo3d.testing.vocaset import write_synthetic_vocaset  # noqa: E402
from pseudo3d.training.data import ARKIT_BLENDSHAPES, FinetuneWindows, collate_windows  # noqa: E402
from pseudo3d.pipelines.audio import load_audio  # noqa: E402
from pseudo3d.training.data.finetune_beat import read_blendshape_json  # noqa: E402

SECONDS = 2.5


@pytest.fixture(scope="module")
def vocaset(tmp_path_factory) -> Path:
    return write_synthetic_vocaset(tmp_path_factory.mktemp("vocaset") / "voca", subjects=2, sentences=3,
                                   seconds=SECONDS, seed=1)


@pytest.fixture(scope="module")
def beat(tmp_path_factory) -> Path:
    return write_synthetic_beat(tmp_path_factory.mktemp("beat") / "beat", sequences=5, seconds=SECONDS, seed=1)


def _copy(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / source.name))


def test_synthetic_vocaset_has_the_real_layout(vocaset):
    with open(vocaset / "templates.pkl", "rb") as handle:
        assert handle.read(2) == b"\x80\x02"  # pickle protocol 2, as the real file
    templates = pickle.loads((vocaset / "templates.pkl").read_bytes())
    assert sorted(templates) == ["SynthTalk_000001_00001_TA", "SynthTalk_000001_00002_TA"]
    template = templates["SynthTalk_000001_00001_TA"]
    assert type(template) is np.ndarray and template.shape == (478, 3)
    vertices = np.load(vocaset / "vertices_npy" / "SynthTalk_000001_00001_TA_sentence01.npy")
    assert vertices.shape == (round(SECONDS * 60), 478 * 3) and vertices.dtype == np.float32
    info = soundfile.info(str(vocaset / "wav" / "SynthTalk_000001_00001_TA_sentence01.wav"))
    assert info.channels == 1 and info.duration == pytest.approx(SECONDS, abs=1e-3)
    # the jaw opens with the speech: the chin (MediaPipe 152) moves down by millimetres
    chin_y = vertices[:, 152 * 3 + 1] - template[152, 1]
    assert chin_y.min() < -0.003 and chin_y.max() < 0.001


def test_vocaset_windows_are_vertices_minus_template_at_30_fps(vocaset):
    windows = FinetuneWindows(vocaset, "vocaset", 30, fps=30, split="train", val_fraction=0.0)
    assert (windows.target.kind, windows.target.n_vertices, windows.target.template) == ("mesh_offsets", 478, "subject")
    templates = pickle.loads((vocaset / "templates.pkl").read_bytes())
    seen = set()
    for window in windows:
        subject = window["key"].rsplit("_", 1)[0]
        vertices = np.load(vocaset / "vertices_npy" / f"{window['key']}.npy")
        start = window["start_frame"]
        expected = vertices[::2][start:start + 30] - templates[subject].reshape(1, -1)
        np.testing.assert_allclose(window["target"].numpy(), expected, atol=1e-6)
        audio = load_audio(vocaset / "wav" / f"{window['key']}.wav", 16000)
        first = round(start / 30 * 16000)
        np.testing.assert_array_equal(window["audio"].numpy(), audio[first:first + 16000])
        assert window["fps"] == 30.0
        seen.add(window["key"])
    assert len(seen) == 6 and len(windows) == 6 * 4  # 75 frames at 30 fps: starts 0, 15, 30, 45


def test_beat_windows_follow_the_json_names_at_30_fps(beat):
    windows = FinetuneWindows(beat, "beat", 20, fps=30, val_fraction=0.0, stride_frames=20)
    assert windows.target.kind == "blendshapes" and windows.target.names == ARKIT_BLENDSHAPES
    window = windows[0]
    path = next(beat.rglob(f"{window['key']}.json"))
    content = json.loads(path.read_text())
    assert content["names"] != list(ARKIT_BLENDSHAPES) and sorted(content["names"]) == sorted(ARKIT_BLENDSHAPES)
    raw = np.array([frame["weights"] for frame in content["frames"]], np.float32)
    assert raw.shape == (round(SECONDS * 60), 52)
    start = window["start_frame"]
    for name in ("jawOpen", "eyeBlinkLeft", "mouthFunnel"):
        column = content["names"].index(name)
        np.testing.assert_array_equal(window["target"][:, ARKIT_BLENDSHAPES.index(name)].numpy(),
                                      raw[::2][start:start + 20, column])
    everything = np.concatenate([w["target"].numpy() for w in windows])
    jaw = everything[:, ARKIT_BLENDSHAPES.index("jawOpen")]
    assert jaw.max() > 0.3 and everything[:, ARKIT_BLENDSHAPES.index("tongueOut")].max() == 0
    assert everything[:, ARKIT_BLENDSHAPES.index("eyeBlinkLeft")].max() > 0.5  # a blink happened somewhere


def test_val_split_is_disjoint_stratified_and_independent_of_the_order_seed(vocaset, beat):
    for root, fmt in ((vocaset, "vocaset"), (beat, "beat")):
        train = FinetuneWindows(root, fmt, 30, split="train", seed=0)
        val = FinetuneWindows(root, fmt, 30, split="val", seed=0)
        train_ids, val_ids = {s.id for s in train.sequences}, {s.id for s in val.sequences}
        assert train_ids and val_ids and not train_ids & val_ids
        assert val.subjects == train.subjects  # every subject has a val sequence
        assert {w["key"] for w in val} == val_ids
        reordered = FinetuneWindows(root, fmt, 30, split="train", seed=7)
        assert {s.id for s in reordered.sequences} == train_ids
        order = lambda d: [(w["key"], w["start_frame"]) for w in d]  # noqa: E731
        assert order(reordered) != order(train) and sorted(order(reordered)) == sorted(order(train))
        assert order(FinetuneWindows(root, fmt, 30, split="train", seed=0)) == order(train)
        other_split = FinetuneWindows(root, fmt, 30, split="val", split_seed=1)
        assert len(other_split.sequences) == len(val.sequences)


def test_subjects_filter_and_dataloader_batches(vocaset):
    windows = FinetuneWindows(vocaset, "vocaset", 30, subjects=["SynthTalk_000001_00002_TA"], val_fraction=0.0)
    assert windows.subjects == ["SynthTalk_000001_00002_TA"]
    batches = list(DataLoader(windows, batch_size=4, collate_fn=collate_windows, num_workers=2))
    assert sum(len(b["keys"]) for b in batches) == len(windows) == 12
    assert batches[0]["audio"].shape == (4, 16000) and batches[0]["target"].shape == (4, 30, 1434)


def test_short_sequences_are_skipped(beat):
    windows = FinetuneWindows(beat, "beat", 100, fps=30, val_fraction=0.0)  # 75 frames per take
    assert len(windows) == 0 and len(windows.short_sequences) == 5


def _skipped(caplog) -> dict[str, str]:
    """File name → the reason of each 'skipping' warning logged."""
    found = {}
    for record in caplog.records:
        if record.levelname == "WARNING" and ": skipping " in record.getMessage():
            path, _, reason = record.getMessage().split(": skipping ", 1)[1].partition(": ")
            found[Path(path).name] = reason
    return found


def test_vocaset_stray_files_are_skipped_with_a_warning_naming_them(vocaset, tmp_path, caplog):
    root = _copy(vocaset, tmp_path)
    wav = vocaset / "wav" / "SynthTalk_000001_00001_TA_sentence01.wav"
    # a .npy of another kind (per-frame landmarks of a known subject), with a wav beside it
    np.save(root / "vertices_npy" / "SynthTalk_000001_00001_TA_landmarks.npy", np.zeros((150, 68, 2), np.float32))
    shutil.copy(wav, root / "wav" / "SynthTalk_000001_00001_TA_landmarks.wav")
    # a subject templates.pkl does not know
    np.save(root / "vertices_npy" / "Stranger_sentence01.npy", np.zeros((150, 1434), np.float32))
    shutil.copy(wav, root / "wav" / "Stranger_sentence01.wav")
    # a text file named .npy, and a sequence whose wav is missing
    (root / "vertices_npy" / "SynthTalk_000001_00002_TA_notes.npy").write_text("not an array\n")
    (root / "wav" / "SynthTalk_000001_00002_TA_sentence02.wav").unlink()
    # an unrelated .json at the root
    (root / "README.json").write_text('{"about": "VOCASET"}')
    with caplog.at_level("WARNING"):
        windows = FinetuneWindows(root, "vocaset", 30, val_fraction=0.0)
    assert sorted(s.id for s in windows.sequences) == sorted(
        p.stem for p in (vocaset / "vertices_npy").glob("*.npy") if p.stem != "SynthTalk_000001_00002_TA_sentence02")
    skipped = _skipped(caplog)
    assert set(skipped) == {"SynthTalk_000001_00001_TA_landmarks.npy", "Stranger_sentence01.npy",
                            "SynthTalk_000001_00002_TA_notes.npy", "SynthTalk_000001_00002_TA_sentence02.npy"}
    assert "shape (150, 68, 2), expected (T, 1434)" in skipped["SynthTalk_000001_00001_TA_landmarks.npy"]
    assert "starts with no subject" in skipped["Stranger_sentence01.npy"]
    assert "not a plain numeric .npy" in skipped["SynthTalk_000001_00002_TA_notes.npy"]
    assert "sentence02.wav does not exist" in skipped["SynthTalk_000001_00002_TA_sentence02.npy"]


def test_vocaset_layout_errors_name_the_file(vocaset, tmp_path):
    root = _copy(vocaset, tmp_path)
    for path in (root / "vertices_npy").glob("*.npy"):
        np.save(path, np.zeros((10, 99), np.float32))
    with pytest.raises(ValueError, match=r"none of the 6 \.npy files is a usable sequence \(the first: "
                                         r"SynthTalk_000001_00001_TA_sentence01\.npy: shape \(10, 99\)"):
        FinetuneWindows(root, "vocaset", 30)
    with pytest.raises(ValueError, match="not in templates.pkl"):
        FinetuneWindows(vocaset, "vocaset", 30, subjects=["Nobody"])
    (root / "templates.pkl").unlink()
    with pytest.raises(FileNotFoundError, match="templates.pkl"):
        FinetuneWindows(root, "vocaset", 30)
    with pytest.raises(ValueError, match="format"):
        FinetuneWindows(vocaset, "biwi", 30)


def test_templates_pickle_is_read_without_running_it(vocaset, tmp_path):
    root = _copy(vocaset, tmp_path)
    (root / "templates.pkl").write_bytes(b"cos\nsystem\n(S'echo owned'\ntR.")
    with pytest.raises(AssetError, match="templates.pkl"):
        FinetuneWindows(root, "vocaset", 30)


def test_beat_stray_files_are_skipped_with_a_warning_naming_them(beat, tmp_path, caplog):
    root = _copy(beat, tmp_path)
    takes = sorted(root.rglob("*.json"))
    wav = takes[0].with_suffix(".wav")
    (root / "meta.json").write_text('{"dataset": "BEAT", "version": "0.2.1"}')       # unrelated, no wav
    (root / "1" / "notes.json").write_text('{"frames": "none"}')                     # not a take
    shutil.copy(wav, root / "1" / "notes.wav")
    (root / "1" / "broken.json").write_text("{not json")
    shutil.copy(wav, root / "1" / "broken.wav")
    content = json.loads(takes[1].read_text())
    content["frames"][3]["weights"] = content["frames"][3]["weights"][:-1]
    takes[1].write_text(json.dumps(content))                                            # a damaged take
    takes[2].with_suffix(".wav").write_bytes(b"RIFF....WAVEfmt ")                       # an unreadable wav
    with caplog.at_level("WARNING"):
        windows = FinetuneWindows(root, "beat", 30, val_fraction=0.0)
    assert sorted(s.id for s in windows.sequences) == sorted(p.stem for p in takes[:1] + takes[3:])
    skipped = _skipped(caplog)
    assert set(skipped) == {"meta.json", "notes.json", "broken.json", takes[1].name, takes[2].name}
    assert "meta.wav does not exist" in skipped["meta.json"]
    assert "expected an object with a 'frames' list" in skipped["notes.json"]
    assert "not readable JSON" in skipped["broken.json"]
    assert skipped[takes[1].name] == "frame 3 has 51 weights for 52 names"
    assert takes[2].with_suffix(".wav").name in skipped[takes[2].name]


def test_beat_errors_name_the_file(beat, tmp_path):
    root = _copy(beat, tmp_path)
    path = sorted(root.rglob("*.json"))[0]
    content = json.loads(path.read_text())
    content["names"][0] = "smirk"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=rf"BEAT {path}: \['smirk'\] are not ARKit"):
        read_blendshape_json(path)
    for other in root.rglob("*.json"):
        other.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"none of the 5 \.json files is a usable take \(the first: "
                                         r"1_synth_0_1_1\.json: \['smirk'\] are not ARKit"):
        FinetuneWindows(root, "beat", 30)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .json"):
        FinetuneWindows(empty, "beat", 30)
