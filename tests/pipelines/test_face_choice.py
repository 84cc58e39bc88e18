import numpy as np

from pseudo3d.pipelines.face_tracker import SWITCH_RATIO, choose_face
from pseudo3d.config import DecodeConfig
from pseudo3d.pipelines.decode import SourceAudio
from pseudo3d.pipelines.probe import Prober
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.pipelines.track import AUDIO_SHORT_TOLERANCE_S, SoundGate


def _box(x, y, side):
    return (x, y, x + side, y + side)


def test_a_new_track_starts_on_the_largest_face():
    assert choose_face([_box(300, 50, 40), _box(20, 40, 120)], None) == 1


def test_the_followed_face_is_kept_while_it_is_about_as_large():
    previous = _box(300, 50, 100)
    boxes = [_box(20, 40, 110), _box(302, 51, 100)]           # the other face is 1.21x larger
    assert choose_face(boxes, previous) == 1


def test_a_much_larger_face_takes_the_track_over():
    previous = _box(300, 50, 60)
    side = 60 * np.sqrt(SWITCH_RATIO) * 1.05
    assert choose_face([_box(20, 40, side), _box(300, 50, 60)], previous) == 0


def test_when_the_followed_face_is_gone_the_largest_is_chosen():
    assert choose_face([_box(20, 40, 50), _box(120, 40, 80)], _box(400, 300, 60)) == 1


def _gate(make_video, audio_s):
    path = make_video(n_frames=100, fps=25, audio_s=audio_s, audio_rate=16000)  # 4 s of video
    [source] = resolve_sources([str(path)])
    probe = Prober(DecodeConfig())(source)
    return SoundGate(SourceAudio(source, probe, 16000), 25.0)


def _pass_all(gate, n_frames=100):
    """Push frames 0..n-1 (each 'tracked'); which came out tracked, and when."""
    out, released_at = [], []
    for index in range(n_frames):
        released = gate.push(index, np.zeros((1, 3)), False)
        released_at += [index] * len(released)
        out += released
    out += gate.finish(n_frames)
    return [points is not None for points, _ in out], released_at


def test_audio_a_little_short_keeps_every_frame(make_video):
    gate = _gate(make_video, 4.0 - AUDIO_SHORT_TOLERANCE_S + 0.05)
    tracked, released_at = _pass_all(gate)
    assert tracked == [True] * 100 and not gate.cut_off
    # The frames past the end of the sound waited for the video's end to decide them.
    assert 85 <= gate.frames_with_sound < 100 and released_at == list(range(gate.frames_with_sound))


def test_audio_much_shorter_than_the_video_limits_the_frames(make_video):
    gate = _gate(make_video, 1.0)                              # 1 s of sound under 4 s of video
    tracked, released_at = _pass_all(gate)
    assert gate.cut_off and gate.frames_with_sound == 25
    assert tracked == [True] * 25 + [False] * 75
    # Decided as soon as the sound had ended and the video went on past it by the tolerance.
    decided = next(i for i in range(100) if gate.audio.length_s < (i + 1) / 25 - AUDIO_SHORT_TOLERANCE_S)
    assert decided in (37, 38)  # 1 s of AAC decodes to 1.00-1.05 s
    assert released_at[25:decided + 1] == [decided] * (decided - 24) and released_at[decided + 1:] == list(
        range(decided + 1, 100))


def test_a_video_without_audio_keeps_every_frame(make_video):
    path = make_video(n_frames=100, fps=25)
    [source] = resolve_sources([str(path)])
    gate = SoundGate(SourceAudio(source, Prober(DecodeConfig(require_audio=False))(source), 16000), 25.0)
    tracked, released_at = _pass_all(gate)
    assert tracked == [True] * 100 and released_at == list(range(100))
