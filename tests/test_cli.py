import json
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
    assert main(["inspect", str(out / "shards" / "shard-000000.tar")]) == 0
    assert "mesh_smooth.npy" in capsys.readouterr().out
    assert main(["build", *inputs, "--out", str(out), "-q"]) == 0
    assert "2 already built" in capsys.readouterr().out
    card = json.loads((out / "dataset.json").read_text())
    assert card["counts"]["inputs"] == 2 and card["config"]["backend"] == "mediapipe"
    assert main(["build", *inputs, "--out", str(out), "-q", "--fps", "30"]) == 2
    assert "different configuration" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--videos", "2", "--seconds", "3", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "[3/3]" in printed and "inputs    5" in printed
    assert (tmp_path / "demo" / "dataset" / "manifest.parquet").is_file()


def test_protocol_not_allowed_names_the_option(tmp_path, capsys):
    code = main(["build", "memory://somewhere/videos", "--out", str(tmp_path / "ds")])
    assert code == 2 and "limits.allowed_protocols" in capsys.readouterr().err


@pytest.mark.slow
def test_synth_bad_corpus(tmp_path, capsys):
    from pseudo3d.synth.bad_corpus import BAD_KINDS

    assert main(["synth", str(tmp_path / "bad"), "--bad-corpus", "-q"]) == 0
    assert "docs/hardening.md" in capsys.readouterr().out
    assert len([p for p in (tmp_path / "bad").iterdir() if not p.name.endswith(".json")]) == len(BAD_KINDS)
