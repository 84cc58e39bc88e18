"""The one audio reader: every common format at any rate and layout, the right level, format
changes mid-stream, and errors that name the file."""

from fractions import Fraction

import av
import numpy as np
import pytest

from pseudo3d.config import DecodeConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.audio import load_audio
from pseudo3d.pipelines.decode import decode_audio
from pseudo3d.pipelines.probe import Prober
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.synth.bad_writer import AudioTrack, VideoTrack, write_media

OUT_RATE = 16_000
LEVEL_DB = -6.0
AMPLITUDE = 10 ** (LEVEL_DB / 20)


def sine(frequency: float, seconds: float, rate: int) -> np.ndarray:
    return (AMPLITUDE * np.sin(2 * np.pi * frequency * np.arange(int(round(seconds * rate))) / rate)).astype(np.float32)


def write_tone(path, container, codec, rate, layout, seconds=1.0, frequency=440.0):
    """``seconds`` of a −6 dBFS sine on every channel of ``layout``, encoded by ``codec``."""
    tone = sine(frequency, seconds, rate)
    with av.open(str(path), "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout=layout)
        channels = stream.codec_context.layout.nb_channels
        for start in range(0, tone.size, 1024):
            chunk = np.ascontiguousarray(np.tile(tone[start:start + 1024], (channels, 1)))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            output.mux(stream.encode(frame))
        output.mux(stream.encode())
    return path


def peak_frequency(samples: np.ndarray, rate: int = OUT_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


def level_db(samples: np.ndarray) -> float:
    """The peak level of a sine from its RMS (dBFS)."""
    return float(20 * np.log10(np.sqrt(np.mean(samples ** 2)) * np.sqrt(2)))


def middle(samples: np.ndarray, start_s: float, stop_s: float) -> np.ndarray:
    return samples[int(start_s * OUT_RATE):int(stop_s * OUT_RATE)]


# name, container, codec, rate, layout, lossless; the encoders FFmpeg ships with PyAV
FORMATS = [
    ("tone.wav", "wav", "pcm_s16le", 44_100, "stereo", True),
    ("tone24.wav", "wav", "pcm_s24le", 96_000, "mono", True),
    ("tone_f32.wav", "wav", "pcm_f32le", 22_050, "stereo", True),
    ("tone_s32.wav", "wav", "pcm_s32le", 8_000, "mono", True),
    ("tone51.wav", "wav", "pcm_s16le", 48_000, "5.1", True),
    ("tone.flac", "flac", "flac", 44_100, "stereo", True),
    ("tone.mp3", "mp3", "libmp3lame", 44_100, "stereo", False),
    ("tone.aac", "adts", "aac", 48_000, "mono", False),
    ("tone.m4a", "ipod", "aac", 32_000, "stereo", False),
    ("tone.opus", "ogg", "libopus", 48_000, "stereo", False),
    ("tone_alac.m4a", "ipod", "alac", 44_100, "mono", True),
]


@pytest.mark.parametrize("name, container, codec, rate, layout, lossless", FORMATS)
def test_every_common_audio_file_loads_at_its_length_pitch_and_level(tmp_path, name, container, codec, rate,
                                                                     layout, lossless):
    path = write_tone(tmp_path / name, container, codec, rate, layout)
    audio = load_audio(path, OUT_RATE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # Lossy encoders add a frame of priming or padding where the container cannot say so (raw AAC).
    assert audio.size / OUT_RATE == pytest.approx(1.0, abs=0.002 if lossless else 0.05)
    steady = middle(audio, 0.3, 0.7)
    assert peak_frequency(steady) == pytest.approx(440.0, abs=2.5)
    assert level_db(steady) == pytest.approx(LEVEL_DB, abs=0.05 if lossless else 0.5)


def test_a_wav_named_like_a_movie_and_a_video_track_load(tmp_path):
    # Real downloads do this: a WAV saved as .mov.
    wav = write_tone(tmp_path / "speech.mov", "wav", "pcm_s16le", 16_000, "stereo", seconds=0.5)
    assert load_audio(wav, OUT_RATE).size == 8000
    video = VideoTrack([np.zeros((32, 32, 3), np.uint8)] * 25, np.arange(25) / 25, 32, 32, Fraction(25))
    clip = write_media(tmp_path / "clip.mp4", "mp4", video, [AudioTrack(sine(440.0, 1.0, 48_000)[None])])
    audio = load_audio(clip, OUT_RATE)
    assert audio.size / OUT_RATE == pytest.approx(1.0, abs=0.01)
    assert level_db(middle(audio, 0.3, 0.7)) == pytest.approx(LEVEL_DB, abs=0.3)


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "absent.wav", "file not found"),
    (lambda d: (d / "notes.wav").write_text("not audio") and d / "notes.wav", "not an audio or video file"),
    (lambda d: write_media(d / "silent.mp4", "mp4", VideoTrack([np.zeros((32, 32, 3), np.uint8)] * 5,
                                                               np.arange(5) / 25, 32, 32, Fraction(25))),
     r"no audio stream in the file \(video\)"),
])
def test_unreadable_audio_is_an_error_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(Pseudo3DError, match=message) as error:
        load_audio(path, OUT_RATE)
    assert str(path) in str(error.value)


def test_a_truncated_flac_is_an_error_naming_the_file(tmp_path):
    whole = write_tone(tmp_path / "whole.flac", "flac", "flac", 44_100, "mono").read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole[:40])
    with pytest.raises(Pseudo3DError, match="cut.flac"):
        load_audio(cut, OUT_RATE)


def _video(seconds: float, start_s: float = 0.0) -> VideoTrack:
    n = int(round(seconds * 25))
    return VideoTrack([np.full((32, 32, 3), 90, np.uint8)] * n, start_s + np.arange(n) / 25, 32, 32, Fraction(25))


def _decode_stage_audio(path) -> np.ndarray:
    source = resolve_sources([str(path)])[0]
    return decode_audio(source, Prober(DecodeConfig())(source), OUT_RATE)


def test_sample_rate_and_layout_changing_mid_stream_are_resampled_through(tmp_path):
    """Two MPEG-TS recordings joined byte for byte: 1 s of 48 kHz mono 440 Hz, then 1 s of
    44.1 kHz stereo 880 Hz, timestamps running on. The resampler is rebuilt at the change."""
    start = 0.12  # no negative first timestamp (AAC priming), so the muxer shifts nothing
    first = write_media(tmp_path / "a.ts", "mpegts", _video(1.0, start),
                        [AudioTrack(sine(440.0, 1.0, 48_000)[None], start_s=start)])
    second = write_media(tmp_path / "b.ts", "mpegts", _video(1.0, start + 1.0),
                         [AudioTrack(np.tile(sine(880.0, 1.0, 44_100), (2, 1)), sample_rate=44_100,
                                     start_s=start + 1.0)])
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    with av.open(str(joined)) as container:
        formats = {(frame.sample_rate, frame.layout.name) for frame in container.decode(audio=0)}
    assert formats == {(48_000, "mono"), (44_100, "stereo")}
    # load_audio starts at the stream's first sample, AAC's priming 21 ms before the first frame.
    for audio in (_decode_stage_audio(joined), load_audio(joined, OUT_RATE)):
        assert audio.size / OUT_RATE == pytest.approx(2.0, abs=0.05)
        for (lo, hi), frequency in (((0.2, 0.8), 440.0), ((1.2, 1.8), 880.0)):
            assert peak_frequency(middle(audio, lo, hi)) == pytest.approx(frequency, abs=2.5)
            assert level_db(middle(audio, lo, hi)) == pytest.approx(LEVEL_DB, abs=0.5)
    # Sample 0 is the first frame, so the second recording starts 1.0 s in (the overlap of the
    # two encoders' priming and padding cut off the first one's end).
    audio = _decode_stage_audio(joined)
    assert peak_frequency(middle(audio, 0.90, 0.97)) == pytest.approx(440.0, abs=15)
    assert peak_frequency(middle(audio, 1.03, 1.10)) == pytest.approx(880.0, abs=15)


@pytest.mark.parametrize("container", ["mov", "matroska"])
@pytest.mark.parametrize("codec", ["pcm_s24le", "pcm_f32le", "pcm_s32le", "pcm_s16le"])
def test_pcm_in_video_containers_keeps_its_level(tmp_path, container, codec):
    path = write_media(tmp_path / f"clip.{'mov' if container == 'mov' else 'mkv'}", container, _video(1.0),
                       [AudioTrack(np.tile(sine(440.0, 1.0, 48_000), (2, 1)), codec=codec)])
    with av.open(str(path)) as opened:
        assert opened.streams.audio[0].codec_context.name == codec
    audio = _decode_stage_audio(path)
    assert audio.size == OUT_RATE
    steady = middle(audio, 0.2, 0.8)
    assert peak_frequency(steady) == pytest.approx(440.0, abs=2.5)
    assert level_db(steady) == pytest.approx(LEVEL_DB, abs=0.02)



def test_a_forged_timestamp_jump_does_not_allocate_past_the_reading_limit(tmp_path):
    """Untrusted input: audio whose timestamps leap ahead (a minute here; a forged file can claim
    hours). Read up to a limit, the leap is cut at the limit rather than filled with silence."""
    from pseudo3d.pipelines.audio import read_audio_stream
    from pseudo3d.pipelines.media import open_container

    rate, leap_s, path = 16_000, 60, tmp_path / "leap.mkv"
    tone = sine(440.0, 1.0, rate)
    with av.open(str(path), "w", format="matroska") as output:
        stream = output.add_stream("pcm_s16le", rate=rate, layout="mono")
        for start in range(0, 2 * tone.size, 1024):
            chunk = np.ascontiguousarray(tone[start % tone.size:start % tone.size + 1024][None])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            leap = leap_s * rate if start >= tone.size else 0  # the second second claims to come a minute on
            frame.sample_rate, frame.pts, frame.time_base = rate, start + leap, Fraction(1, rate)
            output.mux(stream.encode(frame))
        output.mux(stream.encode())

    def read(until_s):
        with open_container(str(path), "decode") as container:
            return read_audio_stream(container, container.streams.audio[0], OUT_RATE, "decode", until_s=until_s)

    assert read(None).samples.size == pytest.approx((2 + leap_s) * OUT_RATE, abs=1100)  # the leap, filled
    assert read(5.0).samples.size == pytest.approx(1.0 * OUT_RATE, abs=1100)  # the first second only
