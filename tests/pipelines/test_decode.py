import math
from fractions import Fraction

import numpy as np
import pytest

from pseudo3d.config import DecodeConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.decode import FrameDecoder, SourceAudio, decode_audio, frame_samples
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


def test_source_audio_read_as_the_video_goes_gives_the_slices_of_the_whole(make_video):
    """Read a clip at a time and forgotten behind, the sound is sample for sample what reading it
    whole gives (aligned to the first frame, zero-padded past its end)."""
    path = make_video(n_frames=100, fps=25, audio_s=3.0, audio_start_s=0.5, audio_rate=16000)
    source, probe, _ = _decode(path)
    whole = decode_audio(source, probe, 16000, max_s=4.0 + 1.0)
    audio = SourceAudio(source, probe, 16000)
    for start in range(0, 120, 20):  # the last clip runs past the video and the sound
        audio.read_to((start + 20) / 25.0 + 1.0)
        begin, end = frame_samples(start, 20, 25.0, 16000)
        expected = np.concatenate([whole[begin:end], np.zeros(max(0, end - max(begin, whole.size)), np.float32)])
        assert np.array_equal(audio.clip(start, 20, 25.0), expected)
        audio.forget_before(end)
    assert audio.exhausted and audio.length_s == pytest.approx(whole.size / 16000)
    assert audio.clip(119, 1, 25.0).max() == 0.0
    with pytest.raises(ValueError, match="forgotten"):
        audio.clip(40, 20, 25.0)


def test_frame_samples_cover_each_frame_exactly_once():
    assert frame_samples(20, 10, 25.0, 16000) == (12800, 19200)
    edges = [frame_samples(k, 1, 30.0, 16000) for k in range(90)]
    assert all(a[1] == b[0] for a, b in zip(edges, edges[1:])) and edges[-1][1] == 48000


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


def test_a_chunk_decodes_the_frames_and_sound_of_the_whole_decode(make_video):
    """A chunk of a long source (``start_frame``/``stop_frame``: a seek to the key frame before it,
    here every 12th frame) gives the frames a whole decode gives at those grid times, and the sound
    at the same place: resampled from the chunk's own start, a 440 Hz tone of amplitude 0.5 stays
    within a fraction of one output sample's phase of the whole decode's."""
    path = make_video(n_frames=60, fps=Fraction(30000, 1001), audio_s=2.0, audio_rate=48000)
    source, probe, whole = _decode(path)
    config = DecodeConfig(require_audio=False)
    for start, stop in [(13, 27), (25, None)]:
        part = list(FrameDecoder(source, probe, config, start, stop))
        assert [frame.index for frame in part] == [frame.index for frame in whole[start:stop]]
        assert all(np.array_equal(a.image, b.image) for a, b in zip(part, whole[start:stop]))
    whole_sound = decode_audio(source, probe, 16000)
    sound = SourceAudio(source, probe, 16000, start_s=1.0)
    sound.read_to(2.5)
    sound.finish()
    begin, end = frame_samples(25, 10, 25.0, 16000)
    one_sample = 0.5 * 2 * math.pi * 440 / 16000  # the most a one-sample shift changes the tone
    assert np.abs(sound.samples(begin, end) - whole_sound[begin:end]).max() < one_sample
    assert np.abs(whole_sound[begin:end]).max() > 0.4


def test_a_chunk_past_the_end_of_a_cut_short_file_says_so(make_video):
    path = make_video(n_frames=30, fps=25)
    source, probe, _ = _decode(path)
    with pytest.raises(StageError, match="no frames from 4.00 s on.*cut short") as caught:
        list(FrameDecoder(source, probe, DecodeConfig(require_audio=False), 100, 150))
    assert caught.value.error == "no_frames"
