import json
from dataclasses import replace
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from pseudo3d.synth.corpus import FRAMING_SCENARIOS, SCENARIOS, make_corpus, plan_framing_video, plan_video
from pseudo3d.synth.face import UPSAMPLE, load_portrait
from pseudo3d.synth.speech import rms_envelope
from pseudo3d.synth.talking import render_talking_video

EXPECTED = {
    "talk_25fps": (Fraction(25), 640, 480, True),
    "talk_30fps_portrait": (Fraction(30), 480, 640, True),
    "talk_2997fps_offset": (Fraction(30000, 1001), 854, 480, True),
    "talk_face_leaves": (Fraction(25), 720, 720, True),
    "talk_noaudio": (Fraction(30), 640, 360, False),
    "talk_cut": (Fraction(30000, 1001), 960, 540, True),
}
PER_FRAME = ("mouth_open", "face_visible", "speech_envelope_fps", "eye_closure")
POSE = ("yaw_rad", "pitch_rad", "roll_rad", "tx_px", "ty_px", "scale")


# --- arguments and planning (fast) ---------------------------------------------------------

@pytest.mark.parametrize(("option", "value"), [
    ("n_videos", 0), ("n_videos", 2.5), ("n_videos", True),
    ("seconds", 0.0), ("seconds", -1.0), ("seconds", float("nan")), ("seconds", "8"),
    ("seed", -1), ("seed", 1.5),
    ("bad_inputs", "yes"),
    ("progress", 42),
    ("framings", 1),
    ("workers", -1), ("workers", 1.5),
])
def test_bad_arguments_raise_naming_the_option(tmp_path, option, value):
    with pytest.raises(ValueError, match=option):
        make_corpus(tmp_path / "corpus", **{option: value})
    assert not (tmp_path / "corpus").exists()


def test_out_dir_must_not_be_a_file(tmp_path):
    file = tmp_path / "taken"
    file.write_text("x")
    with pytest.raises(ValueError, match="out_dir"):
        make_corpus(file)


def test_first_cycle_follows_the_scenario_table():
    for index, scenario in enumerate(SCENARIOS):
        spec = plan_video(index, seconds=8.0, seed=0)
        fps, width, height, has_audio = EXPECTED[scenario.name]
        assert spec.name == f"{index:02d}_{scenario.name}"
        assert (spec.fps, spec.width, spec.height, spec.has_audio) == (fps, width, height, has_audio)
        if scenario.face_leaves:
            assert 12.0 <= spec.duration_s <= 15.0
        else:
            assert 6.4 <= spec.duration_s <= 10.0
    assert plan_video(2, 8.0, 0).audio_delay_frames == 5
    assert plan_video(5, 8.0, 0).shot_cut


def test_lengths_have_floors():
    for index in range(12):
        spec = plan_video(index, seconds=1.0, seed=3)
        assert spec.duration_s >= (8.0 if spec.face_leaves else 3.0)


def test_later_cycles_keep_what_the_names_promise():
    for seed in range(5):
        for index in range(6, 24):
            spec = plan_video(index, 8.0, seed)
            first = plan_video(index % 6, 8.0, seed)
            assert spec.scenario == first.scenario
            assert spec.name == f"{index:02d}_{first.scenario}"
            assert np.sign(spec.width - spec.height) == np.sign(first.width - first.height)
            assert spec.width % 2 == 0 and spec.height % 2 == 0
            if "fps" in spec.scenario:
                assert spec.fps == first.fps
    sizes = {(plan_video(i, 8.0, s).width, plan_video(i, 8.0, s).height) for s in range(5) for i in (6, 12, 18)}
    assert len(sizes) > 1


def test_plans_depend_on_the_seed():
    durations = {round(plan_video(0, 8.0, seed).duration_s, 6) for seed in range(6)}
    assert len(durations) == 6


# --- a rendered corpus (slow) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("scenario_corpus") / "videos"
    calls = []
    paths = make_corpus(out_dir, n_videos=6, seconds=3.0, seed=3, workers=0,
                        progress=lambda done, total, name: calls.append((done, total, name)))
    truths = {p.stem: json.loads(p.with_name(p.stem + ".truth.json").read_text()) for p in paths}
    return out_dir, paths, calls, truths


def _decode_video(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _decode_audio(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)


@pytest.mark.slow
def test_corpus_files_names_and_progress(corpus):
    out_dir, paths, calls, _ = corpus
    names = [f"{i:02d}_{s.name}" for i, s in enumerate(SCENARIOS)]
    assert [p.name for p in paths] == [f"{n}.mp4" for n in names]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [f"{n}.mp4" for n in names] + [f"{n}.truth.json" for n in names])
    assert [done for done, _, _ in calls] == [1, 2, 3, 4, 5, 6]
    assert {total for _, total, _ in calls} == {6}
    assert sorted(name for _, _, name in calls) == [p.name for p in paths]


@pytest.mark.slow
def test_streams_match_the_scenarios(corpus):
    _, paths, _, truths = corpus
    for path in paths:
        truth = truths[path.stem]
        fps, width, height, has_audio = EXPECTED[truth["scenario"]]
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            assert video.codec_context.name == "h264"
            assert video.average_rate == fps
            assert (video.codec_context.width, video.codec_context.height) == (width, height)
            assert len(container.streams.audio) == (1 if has_audio else 0)
            if has_audio:
                audio = container.streams.audio[0]
                assert audio.codec_context.name == "aac"
                assert audio.codec_context.sample_rate == 48000 and audio.codec_context.channels == 2
        assert len(_decode_video(path)) == truth["n_frames"]
        assert truth["fps_fraction"] == f"{fps.numerator}/{fps.denominator}"
        assert truth["fps"] == pytest.approx(float(fps))
        assert (truth["width"], truth["height"], truth["has_audio"]) == (width, height, has_audio)


@pytest.mark.slow
def test_truth_sidecars_are_complete(corpus):
    _, _, _, truths = corpus
    for name, truth in truths.items():
        n = truth["n_frames"]
        assert truth["schema"] == "pseudo3d.synth.truth/1" and truth["name"] == name and truth["seed"] == 3
        assert truth["duration_s"] == pytest.approx(n / truth["fps"])
        assert truth["duration_s"] >= (8.0 if truth["scenario"] == "talk_face_leaves" else 3.0) - 1e-6
        for key in PER_FRAME:
            assert len(truth[key]) == n, key
        for key in POSE:
            assert len(truth["head_pose"][key]) == n, key
        mouth = np.array(truth["mouth_open"])
        assert mouth.min() >= 0.0 and mouth.max() <= 1.0 and mouth.max() > 0.3
        assert np.max(np.abs(truth["head_pose"]["yaw_rad"])) <= np.radians(15) + 1e-6
        assert np.max(np.abs(truth["head_pose"]["roll_rad"])) <= np.radians(10) + 1e-6
        assert truth["audio_sample_rate"] == (48000 if truth["has_audio"] else None)


@pytest.mark.slow
def test_audio_as_stored_matches_the_truth_envelope_and_offset(corpus):
    _, paths, _, truths = corpus
    for path in paths:
        truth = truths[path.stem]
        if not truth["has_audio"]:
            assert not any(truth["speech_envelope_fps"])
            continue
        fps, n = truth["fps"], truth["n_frames"]
        decoded = _decode_audio(path).mean(axis=0)
        envelope = rms_envelope(decoded, 48000, np.arange(n) / fps, 1.0 / fps)
        stored = np.array(truth["speech_envelope_fps"])
        assert np.corrcoef(envelope, stored)[0, 1] > 0.99
        assert envelope.sum() == pytest.approx(stored.sum(), rel=0.05)

        # The sound's own timing (the truth's syllables) lines up with the stored audio exactly after
        # the injected offset; the mouth, articulating naturally, leads it by 1-3 frames.
        def best_lag(curve, lags=np.arange(-8, 9)):
            scores = [np.corrcoef(curve[max(0, -lag):n - max(0, lag)], stored[max(0, lag):n - max(0, -lag)])[0, 1]
                      for lag in lags]
            return int(lags[int(np.argmax(scores))])

        times = np.arange(n) / fps
        sounding = np.zeros(n)
        for syllable in truth["syllables"]:
            sounding[(times >= syllable["start_s"]) & (times <= syllable["end_s"])] = 1.0
        expected_lag = round(truth["audio_offset_s"] * fps)
        assert truth["articulation"] == "natural" and not truth["dubbed"]
        assert best_lag(sounding) == expected_lag
        assert expected_lag + 1 <= best_lag(np.array(truth["mouth_open"])) <= expected_lag + 3
        assert all(0.05 <= s["lip_lead_s"] <= 0.25 for s in truth["syllables"])
        if truth["scenario"] == "talk_2997fps_offset":
            assert expected_lag == 5
            assert truth["audio_offset_s"] == pytest.approx(5 * 1001 / 30000, abs=1 / 48000)
        else:
            assert truth["audio_offset_s"] == 0.0


@pytest.mark.slow
def test_shot_cut_changes_the_picture_at_the_recorded_frame(corpus):
    _, paths, _, truths = corpus
    for path in paths:
        truth = truths[path.stem]
        if truth["scenario"] != "talk_cut":
            assert truth["cuts"] == []
            continue
        [cut] = truth["cuts"]
        assert 0.3 * truth["n_frames"] < cut < 0.7 * truth["n_frames"]
        frames = _decode_video(path)
        changes = np.array([np.abs(after.astype(np.int16) - before).mean() for before, after in zip(frames, frames[1:])])
        assert int(np.argmax(changes)) + 1 == cut
        others = np.delete(changes, cut - 1)
        assert changes[cut - 1] > 5.0 * others.max()
        scale = np.array(truth["head_pose"]["scale"])
        assert abs(scale[cut] / scale[cut - 1] - 1.0) > 0.15


@pytest.mark.slow
def test_face_leaves_the_frame_once_in_the_middle(corpus):
    _, paths, _, truths = corpus
    for path in paths:
        truth = truths[path.stem]
        visible = np.array(truth["face_visible"])
        if truth["scenario"] != "talk_face_leaves":
            assert visible.all()
            continue
        fps = truth["fps"]
        hidden = np.nonzero(~visible)[0]
        assert np.all(np.diff(hidden) == 1), "the face should leave exactly once"
        hidden_s = len(hidden) / fps
        assert hidden_s >= 1.5 and hidden_s <= 2.5
        assert hidden[0] / fps > 2.5 and (len(visible) - 1 - hidden[-1]) / fps > 2.5
        # Mid-gap the picture is backdrop only: none of the head's fine detail is left.
        frames = _decode_video(path)

        def detail(index: int) -> float:
            grey = cv2.cvtColor(frames[index], cv2.COLOR_RGB2GRAY)
            return float(cv2.Laplacian(grey, cv2.CV_64F).var())

        middle = int(hidden[len(hidden) // 2])
        assert detail(middle) < 0.1 * detail(0)


# --- reproducibility (slow) --------------------------------------------------------------

@pytest.mark.slow
def test_same_seed_reproduces_the_corpus_and_another_seed_does_not(tmp_path):
    first = make_corpus(tmp_path / "a", n_videos=2, seconds=1.0, seed=11)
    again = make_corpus(tmp_path / "b", n_videos=2, seconds=1.0, seed=11, workers=2)  # rendered side by side
    other = make_corpus(tmp_path / "c", n_videos=1, seconds=1.0, seed=12)
    assert len(first) == len(again) == 2
    for a, b, c in zip(first, again, other):
        truth_a = a.with_name(a.stem + ".truth.json").read_text()
        assert truth_a == b.with_name(b.stem + ".truth.json").read_text()
        frames_a, frames_b = _decode_video(a), _decode_video(b)
        assert len(frames_a) == len(frames_b)
        assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b))
        assert np.array_equal(_decode_audio(a), _decode_audio(b))
        assert a.read_bytes() == b.read_bytes()
        truth_c = json.loads(c.with_name(c.stem + ".truth.json").read_text())
        parsed_a = json.loads(truth_a)
        assert parsed_a["mouth_open"] != truth_c["mouth_open"]
        assert parsed_a["head_pose"]["yaw_rad"] != truth_c["head_pose"]["yaw_rad"]


# --- framings (issue 13): tight crop, medium shots, heads turned without a rotation tag ----------

FRAMING_EXPECTED = {
    # name: (width, height, framing, head turn in degrees)
    "tight_224": (224, 224, "tight", 0),
    "medium_1920x1080": (1920, 1080, "medium", 0),
    "medium_720x1080": (720, 1080, "medium", 0),
    "roll_90": (640, 480, "standard", 90),
    "roll_180": (640, 480, "standard", 180),
}


def test_framing_plans_follow_their_table():
    assert [s.name for s in FRAMING_SCENARIOS] == list(FRAMING_EXPECTED)
    for index, scenario in enumerate(FRAMING_SCENARIOS):
        spec = plan_framing_video(index, seconds=8.0, seed=0)
        width, height, framing, turn = FRAMING_EXPECTED[scenario.name]
        assert spec.name == f"framing_{scenario.name}" and spec.scenario == scenario.name
        assert (spec.width, spec.height, spec.framing, spec.head_turn_deg, spec.fps) == (width, height, framing, turn, 25)
        assert 6.4 <= spec.duration_s <= 10.0 and spec.has_audio
        # Their own random streams: not those of corpus video `index`.
        assert spec.family != plan_video(index, 8.0, 0).family


@pytest.mark.slow
def test_framing_truth_matches_the_framing(framing_corpus):
    face_height = load_portrait().face_height / UPSAMPLE          # source-portrait pixels
    for name, (width, height, framing, turn) in FRAMING_EXPECTED.items():
        truth = json.loads((framing_corpus / f"framing_{name}.truth.json").read_text())
        assert (truth["width"], truth["height"], truth["scenario"]) == (width, height, name)
        frames = _decode_video(framing_corpus / f"framing_{name}.mp4")
        assert len(frames) == truth["n_frames"] and frames[0].shape == (height, width, 3)
        pose = truth["head_pose"]
        face_px = np.array(pose["scale"]) * face_height            # forehead to chin, frame pixels
        if framing == "tight":
            assert np.all((face_px > 0.6 * 224) & (face_px < 0.8 * 224))
        elif framing == "medium":
            assert np.all((face_px > 0.9 * 64) & (face_px < 1.1 * 110))
        roll = np.array(pose["roll_rad"]) - np.radians(turn)
        assert np.max(np.abs(roll)) <= np.radians(10) + 1e-6
        assert all(truth["face_visible"])


def test_an_unknown_framing_is_refused(tmp_path):
    with pytest.raises(ValueError, match="framing"):
        render_talking_video(replace(plan_framing_video(0, 3.0, 0), framing="wide"), tmp_path)
    assert list(tmp_path.iterdir()) == []
