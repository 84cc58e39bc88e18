"""Export: the Live Link Face CSV and the preview MP4 (decoded back with PyAV)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from pseudo3d.reconstruction.template import mediapipe_template
from pseudo3d.testing.flame_assets import synthetic_head
from pseudo3d.training.export import (
    ARKIT_52, LIVE_LINK_FACE_BLENDSHAPES, live_link_timecode, mediapipe_faces, render_preview,
    write_live_link_csv)
from pseudo3d.qa.report.render import fit_view

# The header of a take exported by Epic's Live Link Face app.
LIVE_LINK_HEADER = (
    "Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,EyeLookInLeft,EyeLookOutLeft,EyeLookUpLeft,"
    "EyeSquintLeft,EyeWideLeft,EyeBlinkRight,EyeLookDownRight,EyeLookInRight,EyeLookOutRight,EyeLookUpRight,"
    "EyeSquintRight,EyeWideRight,JawForward,JawRight,JawLeft,JawOpen,MouthClose,MouthFunnel,MouthPucker,"
    "MouthRight,MouthLeft,MouthSmileLeft,MouthSmileRight,MouthFrownLeft,MouthFrownRight,MouthDimpleLeft,"
    "MouthDimpleRight,MouthStretchLeft,MouthStretchRight,MouthRollLower,MouthRollUpper,MouthShrugLower,"
    "MouthShrugUpper,MouthPressLeft,MouthPressRight,MouthLowerDownLeft,MouthLowerDownRight,MouthUpperUpLeft,"
    "MouthUpperUpRight,BrowDownLeft,BrowDownRight,BrowInnerUp,BrowOuterUpLeft,BrowOuterUpRight,CheekPuff,"
    "CheekSquintLeft,CheekSquintRight,NoseSneerLeft,NoseSneerRight,TongueOut,HeadYaw,HeadPitch,HeadRoll,"
    "LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll")


def _read_csv(path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


def test_live_link_csv_header_rows_and_timecodes(tmp_path):
    weights = np.zeros((3, 52))
    arkit = {name: index for index, name in enumerate(ARKIT_52)}
    weights[:, arkit["jawOpen"]] = [0.0, 0.5, 1.5]       # 1.5 is clipped to 1
    weights[:, arkit["jawLeft"]] = 0.2                   # the app lists JawRight before JawLeft
    weights[:, arkit["mouthLeft"]] = 0.3
    weights[:, arkit["eyeBlinkLeft"]] = -0.1             # clipped to 0
    weights[:, arkit["tongueOut"]] = 0.25
    path = write_live_link_csv(tmp_path / "take.csv", weights, fps=25)

    header, rows = _read_csv(path)
    assert ",".join(header) == LIVE_LINK_HEADER
    assert len(header) == 63 and len(rows) == 3 and all(len(row) == 63 for row in rows)
    column = {name: index for index, name in enumerate(header)}
    assert [row[0] for row in rows] == ["00:00:00:00.000", "00:00:00:01.200", "00:00:00:02.400"]
    assert all(row[1] == "61" for row in rows)
    assert [float(row[column["JawOpen"]]) for row in rows] == [0.0, 0.5, 1.0]
    assert float(rows[0][column["JawLeft"]]) == 0.2 and float(rows[0][column["JawRight"]]) == 0.0
    assert float(rows[0][column["MouthLeft"]]) == 0.3 and float(rows[0][column["MouthRight"]]) == 0.0
    assert float(rows[0][column["EyeBlinkLeft"]]) == 0.0 and float(rows[2][column["TongueOut"]]) == 0.25
    assert all(float(value) == 0.0 for row in rows for value in row[column["HeadYaw"]:])


def test_timecodes_round_trip_as_unreal_reads_them(tmp_path):
    assert live_link_timecode(3723.5) == "01:02:03:15.000"
    assert live_link_timecode(1.04, rate=60) == "00:00:01:02.400"
    assert live_link_timecode(0.99999) == "00:00:01:00.000"  # never a frame field of 30.000
    fps = 29.97
    path = write_live_link_csv(tmp_path / "t.csv", np.full((200, 52), 0.5), fps=fps, start_seconds=10.0)
    _, rows = _read_csv(path)
    for index, row in enumerate(rows):
        hours, minutes, seconds, frames = row[0].split(":")
        assert float(frames) < 30  # so Unreal infers 30 fps
        seconds_read = int(hours) * 3600 + int(minutes) * 60 + int(seconds) + float(frames) / 30
        assert seconds_read == pytest.approx(10.0 + index / fps, abs=2e-5)


def test_names_map_case_insensitively_in_any_order(tmp_path):
    weights = np.random.default_rng(0).uniform(0, 1, (4, 52)).round(6)
    path = write_live_link_csv(tmp_path / "llf.csv", weights, fps=60,
                               names=[name.upper() for name in LIVE_LINK_FACE_BLENDSHAPES])
    _, rows = _read_csv(path)
    assert np.array_equal(np.array([[float(value) for value in row[2:54]] for row in rows]), weights)


def test_csv_input_checks(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(T, 52\), got \(3, 51\)"):
        write_live_link_csv(tmp_path / "a.csv", np.zeros((3, 51)), fps=30)
    with pytest.raises(ValueError, match="names holds jawOpn, not ARKit"):
        write_live_link_csv(tmp_path / "a.csv", np.zeros((3, 52)), 30, names=[*ARKIT_52[:17], "jawOpn", *ARKIT_52[18:]])
    with pytest.raises(ValueError, match="EYEBLINKLEFT"):
        write_live_link_csv(tmp_path / "a.csv", np.zeros((3, 52)), 30, names=["EYEBLINKLEFT", *ARKIT_52[:-1]])
    bad = np.zeros((3, 52))
    bad[1, 17] = np.nan
    with pytest.raises(ValueError, match=r"frame 1, column 17 \(jawOpen\)"):
        write_live_link_csv(tmp_path / "a.csv", bad, fps=30)
    with pytest.raises(ValueError, match="timecode rate"):
        write_live_link_csv(tmp_path / "a.csv", np.zeros((3, 52)), fps=25, timecode_rate=25)
    assert not list(tmp_path.iterdir())


def _talking_mediapipe(n_frames: int) -> np.ndarray:
    """(T, 478, 3) template whose jaw (everything below the inner-lip midpoint) drops in frames ≥ T/2."""
    vertices = mediapipe_template().vertices
    jaw = vertices[:, 1] < 0.5 * (vertices[13, 1] + vertices[14, 1])
    sequence = np.repeat(vertices[None], n_frames, axis=0)
    sequence[n_frames // 2:, jaw, 1] -= 1.2  # cm
    return sequence


def _decode(path) -> tuple[list[np.ndarray], int, int | None]:
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return frames, 0, None
        rate = container.streams.audio[0].rate
        samples = sum(frame.samples for frame in container.decode(audio=0))
    return frames, samples, rate


def test_preview_of_a_mediapipe_mesh_with_audio(tmp_path):
    n_frames, fps, size = 10, 25, 160
    sequence = _talking_mediapipe(n_frames)
    t = np.arange(int(16000 * n_frames / fps)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    path = render_preview(tmp_path / "preview.mp4", sequence, None, fps, audio, size=size)

    frames, samples, rate = _decode(path)
    assert len(frames) == n_frames and frames[0].shape == (size, size, 3)
    assert rate == 16000 and abs(samples - audio.size) < 1024  # the last AAC frame is padded
    view = fit_view(sequence, mediapipe_faces(), size)
    lips = view.pixels(sequence[-1])[[13, 14, 61, 291]]  # inner-lip middles, mouth corners
    (left, top), (right, bottom) = lips.min(axis=0).astype(int), lips.max(axis=0).astype(int)
    forehead = view.pixels(sequence[0])[10]
    closed, open_ = (frame.astype(np.int16) for frame in (frames[0], frames[-1]))
    mouth_change = np.abs(open_ - closed)[top:bottom + 1, left:right + 1].mean()
    row, col = int(forehead[1]) + 6, int(forehead[0])
    forehead_change = np.abs(open_ - closed)[row - 5:row + 5, col - 10:col + 10].mean()
    assert mouth_change > 30 and forehead_change < 3
    assert np.abs(frames[1].astype(np.int16) - closed).mean() < 2  # still frames stay still


def test_preview_of_the_synthetic_flame_head_without_audio(tmp_path):
    head = synthetic_head()
    sequence = np.repeat(head.vertices[None], 4, axis=0)
    sequence[2:, :, 1] += 0.01  # the whole head moves up 1 cm: the view is fitted to the sequence
    path = render_preview(tmp_path / "flame.mp4", sequence, head.faces, 30.0, size=96)
    frames, samples, rate = _decode(path)
    assert len(frames) == 4 and frames[0].shape == (96, 96, 3) and rate is None
    assert np.abs(frames[3].astype(np.int16) - frames[0]).mean() > 2


def test_preview_input_checks(tmp_path):
    with pytest.raises(ValueError, match="even"):
        render_preview(tmp_path / "a.mp4", _talking_mediapipe(2), None, 25, size=101)
    with pytest.raises(ValueError, match=r"MediaPipe mesh.*\(2, 5, 3\)"):
        render_preview(tmp_path / "a.mp4", np.zeros((2, 5, 3)), None, 25)
    with pytest.raises(ValueError, match="mesh has 3 vertices"):
        render_preview(tmp_path / "a.mp4", np.zeros((2, 3, 3)), np.array([[0, 1, 3]]), 25)
    with pytest.raises(ValueError, match=r"audio must be \(S,\)"):
        render_preview(tmp_path / "a.mp4", _talking_mediapipe(2), None, 25, np.zeros((2, 100), np.float32))
    assert not list(tmp_path.iterdir())
