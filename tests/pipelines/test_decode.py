import math
from fractions import Fraction

import numpy as np
import pytest

from pseudo3d.config import DecodeConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.decode import FrameDecoder, decode_audio, slice_audio
from pseudo3d.pipelines.probe import Prober
from pseudo3d.pipelines.sources import resolve_sources


def _decode(path, **config):
    config = DecodeConfig(require_audio=False, **config)
    source = resolve_sources([str(path)])[0]
    probe = Prober(config)(source)
    return source, probe, list(FrameDecoder(source, probe, config))


def _source_index(frame) -> int:
    return int(round(float(frame.image.mean()) / 4))


def test_probe_reports_streams(make_video):
    path = make_video(n_frames=30, fps=Fraction(30000, 1001), audio_s=1.0)
    probe = Prober(DecodeConfig())(resolve_sources([str(path)])[0])
    assert probe.has_audio and probe.n_video_streams == 1
    assert probe.fps == pytest.approx(29.97, abs=0.01)
    assert (probe.width, probe.height) == (96, 64)
    assert probe.audio_sample_rate == 48000


def test_2997_to_25_picks_nearest_source_frame(make_video):
    path = make_video(n_frames=60, fps=Fraction(30000, 1001))
    _, _, frames = _decode(path, fps=25.0)
    duration = 60 * 1001 / 30000
    assert len(frames) == math.ceil(duration * 25 - 1e-6)  # every grid time inside the video
    for frame in frames:
        expected = round(frame.index / 25 * 30000 / 1001)
        assert _source_index(frame) == min(expected, 59)


def test_variable_frame_rate_lands_on_grid(make_video):
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.02, 0.06, 40)) - 0.02
    path = make_video(n_frames=40, fps=25, timestamps_s=times.tolist())
    _, _, frames = _decode(path, fps=25.0)
    for frame in frames:
        t = frame.index / 25
        assert _source_index(frame) == int(np.argmin(np.abs(times - times[0] - t)))


def test_upsampling_repeats_frames(make_video):
    path = make_video(n_frames=20, fps=10)
    _, _, frames = _decode(path, fps=25.0)
    assert len(frames) == 50
    assert [_source_index(f) for f in frames[:6]] == [0, 0, 1, 1, 2, 2]


def test_audio_is_aligned_to_first_video_frame(make_video):
    path = make_video(n_frames=50, fps=25, audio_s=1.5, audio_start_s=0.5, audio_rate=16000)
    source, probe, _ = _decode(path)
    audio = decode_audio(source, probe, 16000)
    envelope = np.abs(audio)
    onset = np.flatnonzero(envelope > 0.1)[0] / 16000
    # AAC's encoder delay is compensated by the demuxer; allow a few ms for the codec's ramp.
    assert onset == pytest.approx(0.5, abs=0.01)
    assert audio.shape[0] == pytest.approx(2.0 * 16000, abs=2048)


def test_slice_audio_exact_length_and_padding():
    audio = np.ones(32000, np.float32)
    piece = slice_audio(audio, start_frame=20, n_frames=10, fps=25.0, sample_rate=16000)
    assert piece.shape == (6400,) and piece.min() == 1.0
    tail = slice_audio(audio, start_frame=20, n_frames=10, fps=30.0, sample_rate=16000)
    assert tail.shape == (round(30 / 30 * 16000) - round(20 / 30 * 16000),)
    padded = slice_audio(audio, start_frame=40, n_frames=20, fps=25.0, sample_rate=16000)
    assert padded.shape == (12800,) and padded[6399] == 1.0 and padded[6400] == 0.0


def test_downscale_keeps_source_size_in_probe(make_video):
    path = make_video(n_frames=5, size=(320, 240))
    _, probe, frames = _decode(path, max_side=160)
    assert (probe.width, probe.height) == (320, 240)
    assert frames[0].image.shape == (120, 160, 3) and frames[0].scale == 0.5


def test_rotation_metadata_is_applied(make_video):
    path = make_video(n_frames=5, size=(96, 64), rotation=90)
    _, probe, frames = _decode(path)
    assert probe.rotation == 90
    assert (probe.width, probe.height) == (64, 96)
    assert frames[0].image.shape == (96, 64, 3)


def test_text_file_fails_probe(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(StageError) as error:
        Prober(DecodeConfig())(resolve_sources([str(path)])[0])
    assert error.value.stage == "probe" and error.value.error == "not_a_video"


def test_missing_audio_is_a_probe_failure_when_required(make_video):
    path = make_video(n_frames=5)
    with pytest.raises(StageError) as error:
        Prober(DecodeConfig(require_audio=True))(resolve_sources([str(path)])[0])
    assert error.value.error == "no_audio_stream" and "require_audio" in error.value.message


def test_empty_file_fails_probe(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(StageError) as error:
        Prober(DecodeConfig())(resolve_sources([str(path)])[0])
    assert error.value.error == "empty_file"


def test_probe_refuses_what_exceeds_the_limits(make_video):
    from pseudo3d.config import LimitsConfig
    from pseudo3d.schemas.records import Source

    source = resolve_sources([str(make_video(n_frames=50, fps=25, audio_s=2.0))])[0]
    with pytest.raises(StageError, match="limits.max_duration_s") as error:
        Prober(DecodeConfig(), LimitsConfig(max_duration_s=1.0))(source)
    assert (error.value.stage, error.value.error) == ("probe", "too_long")
    with pytest.raises(StageError, match="limits.max_pixels") as error:
        Prober(DecodeConfig(), LimitsConfig(max_pixels=90 * 60))(source)
    assert error.value.error == "too_large"
    gone = Source(uri=str(source.uri) + ".gone", identity="gone.mp4", source_id="gone-0")
    with pytest.raises(StageError) as error:
        Prober(DecodeConfig())(gone)
    assert error.value.error == "missing"
