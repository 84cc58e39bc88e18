import json
import re
import subprocess
import sys

import pytest

from pseudo3d.cli import main


def test_missing_input_message(tmp_path, capsys):
    code = main(["build", str(tmp_path / "nowhere.mp4"), "--out", str(tmp_path / "ds")])
    err = capsys.readouterr().err
    assert code == 2
    assert "input not found" in err and "nowhere.mp4" in err


def test_unwritable_output_is_named(tmp_path, capsys, make_video):
    video = make_video(n_frames=5)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["build", str(video), "--out", str(blocker / "ds")])
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and str(blocker / "ds") in err


def test_bad_config_names_the_option(tmp_path, capsys, make_video):
    config = tmp_path / "build.yaml"
    config.write_text("smoothing:\n  mesh:\n    polyorder: 9\n")
    code = main(["build", str(make_video(n_frames=5)), "--out", str(tmp_path / "ds"), "--config", str(config)])
    assert code == 2 and "smoothing.mesh.polyorder" in capsys.readouterr().err


def test_bad_arguments_exit_nonzero(tmp_path):
    with pytest.raises(SystemExit) as error:
        main(["synth", str(tmp_path), "--videos", "0"])
    assert error.value.code == 2


def test_inspect_refuses_non_datasets(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "no dataset.json" in capsys.readouterr().err


def test_module_entry_point_reports_version():
    out = subprocess.run([sys.executable, "-m", "pseudo3d", "--version"], check=True, capture_output=True, text=True)
    assert out.stdout.startswith("pseudo3d ")


@pytest.mark.slow
def test_build_inspect_and_resume_through_the_cli(synthetic_corpus, tmp_path, capsys):
    out = tmp_path / "ds"
    inputs = [str(synthetic_corpus / "00_talk_25fps.mp4"), str(synthetic_corpus / "bad_not_a_video.mp4")]
    assert main(["build", *inputs, "--out", str(out), "-q", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "inputs 2: ok 1, failed 1" in printed and "not_a_video 1" in printed
    assert main(["inspect", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "00_talk_25fps" in summary and "bad_not_a_video.mp4" in summary
    [shard] = (out / "shards").glob("shard-000000-00-*.tar")
    assert main(["inspect", str(shard)]) == 0
    assert "mesh_smooth.npy" in capsys.readouterr().out
    assert main(["build", *inputs, "--out", str(out), "-q"]) == 0
    assert "2 already built" in capsys.readouterr().out
    card = json.loads((out / "dataset.json").read_text())
    assert card["counts"]["inputs"] == 2 and card["config"]["backend"] == "mediapipe"
    assert main(["build", *inputs, "--out", str(out), "-q", "--fps", "30"]) == 2
    assert "different configuration" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--videos", "1", "--seconds", "3", "-q"]) == 0
    printed = capsys.readouterr().out
    # One video and the three bad inputs: the dataset summary's line.
    assert "[3/3]" in printed and re.search(r"^inputs +4 ", printed, re.MULTILINE)
    assert (tmp_path / "demo" / "dataset" / "manifest").is_dir()


def test_protocol_not_allowed_names_the_option(tmp_path, capsys):
    code = main(["build", "memory://somewhere/videos", "--out", str(tmp_path / "ds")])
    assert code == 2 and "limits.allowed_protocols" in capsys.readouterr().err


# `pseudo3d synth DIR --bad-corpus` runs once per session, in conftest.bad_corpus; what it wrote and
# printed is checked in tests/synth/test_synth_bad_corpus.py.


# --- Unreadable user data: one line naming the file, exit 2, never a traceback -------------------

def _garbage(tmp_path):
    """Files that are not what their names say."""
    (tmp_path / "shard.tar").write_text("not a tar\n")
    (tmp_path / "text.npy").write_text("not numbers\n")
    (tmp_path / "broken.flac").write_bytes(b"fLaC\x00\x00\x00\x22" + b"\x00" * 20)
    dataset = tmp_path / "ds"
    dataset.mkdir()
    (dataset / "dataset.json").write_text("{not json")
    beat = tmp_path / "beat" / "1"
    beat.mkdir(parents=True)
    (beat / "1_take_0_1_1.json").write_text("{not json")
    (beat / "1_take_0_1_1.wav").write_bytes(b"RIFF")
    return tmp_path


def _one_error_line(capsys, code, name):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("pseudo3d ")]
    assert len(lines) == 1 and name in lines[0], err
    return lines[0]


@pytest.mark.parametrize("argv, name", [
    (["inspect", "{d}/shard.tar"], "shard.tar"),
    (["inspect", "{d}/ds"], "ds"),
    (["qa", "{d}/ds"], "dataset.json"),
])
def test_unreadable_datasets_are_one_line_naming_the_file(tmp_path, capsys, argv, name):
    d = _garbage(tmp_path)
    line = _one_error_line(capsys, main([arg.format(d=d) for arg in argv]), name)
    assert str(d) in line


@pytest.mark.parametrize("argv, name", [
    (["animate", "{d}/text.npy", "--checkpoint", "{d}/run", "--out", "{d}/o.npz"], "text.npy"),
    (["animate", "{d}/broken.flac", "--checkpoint", "{d}/run", "--out", "{d}/o.npz"], "broken.flac"),
    (["train", "pretrain", "--data", "{d}/shard.tar", "--out", "{d}/run", "--steps", "1"], "shard.tar"),
    (["train", "finetune", "--from-scratch", "--data", "{d}/beat", "--format", "beat", "--out", "{d}/run",
      "--steps", "1"], "1_take_0_1_1.json"),
])
def test_unreadable_training_data_is_one_line_naming_the_file(tmp_path, capsys, argv, name):
    pytest.importorskip("torch")
    d = _garbage(tmp_path)
    line = _one_error_line(capsys, main([arg.format(d=d) for arg in argv]), name)
    assert not (d / "o.npz").exists()
    if argv[0] == "train":
        assert "--data" in line


@pytest.mark.slow
def test_eval_on_unreadable_data_is_one_line_naming_the_file(tmp_path, capsys):
    pytest.importorskip("torch")
    from pseudo3d.testing.beat import write_synthetic_beat

    beat = write_synthetic_beat(tmp_path / "beat_ok", sequences=2, seconds=1.5, seed=0)
    run = tmp_path / "run"
    assert main(["train", "finetune", "--from-scratch", "--data", str(beat), "--format", "beat", "--out", str(run),
                 "--steps", "1", "--batch-size", "2", "--num-workers", "0", "--window-s", "1.0", "-q"]) == 0
    d = _garbage(tmp_path)
    capsys.readouterr()
    _one_error_line(capsys, main(["eval", "--checkpoint", str(run), "--data", str(d / "shard.tar")]), "shard.tar")
    _one_error_line(capsys, main(["eval", "--checkpoint", str(run), "--data", str(d / "beat"), "--format", "beat"]),
                    "1_take_0_1_1.json")


def test_the_traceback_is_shown_with_verbose(tmp_path, capsys):
    d = _garbage(tmp_path)
    assert main(["-v", "inspect", str(d / "shard.tar")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("pseudo3d inspect: error: ")
