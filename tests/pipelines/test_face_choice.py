import numpy as np

from pseudo3d.pipelines.face_tracker import SWITCH_RATIO, choose_face
from pseudo3d.pipelines.track import AUDIO_SHORT_TOLERANCE_S, _frames_with_sound
from pseudo3d.schemas.records import ProbeInfo


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


def _probe(has_audio=True):
    return ProbeInfo(container="mov,mp4", size_bytes=1, duration_s=4.0, video_codec="h264", width=64, height=64,
                     fps=25.0, rotation=0, n_video_streams=1, n_audio_streams=int(has_audio),
                     audio_codec="aac" if has_audio else None, audio_sample_rate=48000 if has_audio else None,
                     audio_channels=1 if has_audio else None)


def test_audio_a_little_short_keeps_every_frame():
    audio = np.zeros(int((4.0 - AUDIO_SHORT_TOLERANCE_S + 0.01) * 16000), np.float32)
    assert _frames_with_sound(audio, _probe(), 100, 25.0, 16000) == 100


def test_audio_much_shorter_than_the_video_limits_the_frames():
    audio = np.zeros(16000, np.float32)                        # 1 s under a 4 s video
    assert _frames_with_sound(audio, _probe(), 100, 25.0, 16000) == 25


def test_a_video_without_audio_keeps_every_frame():
    assert _frames_with_sound(np.zeros(0, np.float32), _probe(has_audio=False), 100, 25.0, 16000) == 100
