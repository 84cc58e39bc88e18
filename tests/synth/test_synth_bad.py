import json

import av
import mediapipe as mp
import numpy as np
import pytest

from pseudo3d.synth.corpus import make_corpus

BAD = ("bad_no_face.mp4", "bad_not_a_video.mp4", "bad_truncated.mp4")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bad")
    calls = []
    paths = make_corpus(out_dir, n_videos=1, seconds=3.0, seed=4, bad_inputs=True,
                        progress=lambda done, total, name: calls.append((done, total, name)))
    return out_dir, paths, calls


@pytest.mark.slow
def test_bad_inputs_are_listed_with_the_videos(corpus):
    out_dir, paths, calls = corpus
    assert [p.name for p in paths] == ["00_talk_25fps.mp4", *BAD]
    assert [(done, total) for done, total, _ in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert (out_dir / "bad_no_face.truth.json").exists()
    assert not (out_dir / "bad_not_a_video.truth.json").exists()
    assert not (out_dir / "bad_truncated.truth.json").exists()
    assert not list(out_dir.glob("*.partial"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bad_not_a_video.mp4", "bad_truncated.mp4"])
def test_broken_files_cannot_be_opened(corpus, name):
    out_dir, _, _ = corpus
    with pytest.raises(av.FFmpegError):
        av.open(str(out_dir / name))


@pytest.mark.slow
def test_truncated_file_starts_like_an_mp4(corpus):
    out_dir, _, _ = corpus
    data = (out_dir / "bad_truncated.mp4").read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):              # top-level MP4 boxes: 32-bit size, 4-byte type
        size, kind = int.from_bytes(data[offset:offset + 4], "big"), data[offset + 4:offset + 8]
        boxes.append(kind)
        if size == 1:                           # 64-bit size follows the type
            size = int.from_bytes(data[offset + 8:offset + 16], "big")
        offset += size
    assert boxes[0] == b"ftyp" and boxes[-1] == b"mdat"
    assert b"moov" not in boxes
    assert offset > len(data), "the media data box should run past the end of the file"


@pytest.mark.slow
def test_no_face_video_plays_with_sound_and_shows_nobody(corpus):
    out_dir, _, _ = corpus
    path = out_dir / "bad_no_face.mp4"
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    assert len(frames) == 100                                   # 4 s at 25 fps
    assert audio.shape[0] == 2 and audio.shape[1] >= 4 * 48000
    assert np.sqrt(np.mean(audio ** 2)) > 0.01
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1.0, "the backdrop should move"
    truth = json.loads((out_dir / "bad_no_face.truth.json").read_text())
    assert truth["n_frames"] == 100 and not any(truth["face_visible"]) and not any(truth["mouth_open"])
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True) as mesh:
        assert not any(mesh.process(frames[i]).multi_face_landmarks for i in (0, 50, 99))
