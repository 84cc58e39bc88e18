"""Files cut short (a partial download) and paths that are not files: a video whose frames end
before its header says gets a ``decode/truncated`` row and keeps what decoded; an audio file that
decodes to less than its header declares is refused by name; a FIFO is refused at once."""

import os
from fractions import Fraction

import av
import numpy as np
import pytest

from pseudo3d.config import DecodeConfig, TrackConfig
from pseudo3d.errors import Pseudo3DError, StageError
from pseudo3d.pipelines.audio import load_audio
from pseudo3d.pipelines.probe import Prober
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.pipelines.track import DecodeTrack


@pytest.fixture(scope="module")
def front_indexed_video(tmp_path_factory):
    """A 4 s synthetic talking head remuxed with its index at the front (``movflags=faststart``), as
    streaming-friendly downloads are: cut short, such a file still opens and declares its full length."""
    from pseudo3d.logs import native_stderr_silenced
    from pseudo3d.synth.corpus import make_corpus

    folder = tmp_path_factory.mktemp("faststart")
    with native_stderr_silenced():
        make_corpus(folder, n_videos=1, seconds=4.0, seed=2)
    original = next(folder.glob("00_*.mp4"))
    remuxed = folder / "faststart.mp4"
    with av.open(str(original)) as source, av.open(str(remuxed), "w", options={"movflags": "faststart"}) as out:
        streams = {stream.index: out.add_stream_from_template(stream) for stream in source.streams
                   if stream.type in ("video", "audio")}
        for packet in source.demux(*[source.streams[i] for i in streams]):
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return remuxed


def _track(path):
    [source] = resolve_sources([str(path)])
    probe = Prober(DecodeConfig())(source)
    tracked = DecodeTrack(DecodeConfig(), TrackConfig(min_clip_s=1.0))(source, probe)
    return probe, tracked, list(tracked)


def test_a_video_cut_short_is_kept_with_a_truncated_row(front_indexed_video, tmp_path):
    whole_probe, whole, _ = _track(front_indexed_video)
    length_s = whole.n_frames / 25.0
    assert whole_probe.video_duration_s == pytest.approx(length_s, abs=0.05)
    assert not [f for f in whole.failures if f.error == "truncated"]
    cut = tmp_path / "cut.mp4"
    data = front_indexed_video.read_bytes()
    cut.write_bytes(data[:int(len(data) * 0.55)])
    probe, tracked, clips = _track(cut)
    assert probe.video_duration_s == whole_probe.video_duration_s  # the header still declares the whole length
    [row] = [f for f in tracked.failures if f.error == "truncated"]
    decoded_s = tracked.n_frames / 25.0
    assert row.stage == "decode" and decoded_s < 0.8 * length_s
    assert row.duration_s == pytest.approx(probe.video_duration_s - decoded_s, abs=1e-6)
    assert f"declares {probe.video_duration_s:.2f} s" in row.message
    assert clips  # what decoded is kept


def _wav(path, seconds, rate=16_000):
    tone = (0.5 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        for start in range(0, tone.size, 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_an_audio_file_cut_short_is_refused_by_name(tmp_path):
    whole = _wav(tmp_path / "speech.wav", 3.0)
    assert load_audio(whole, 16_000).size == 48_000
    cut = tmp_path / "speech cut.wav"
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) // 3])
    with pytest.raises(Pseudo3DError, match=r"speech cut\.wav: the file declares 3\.00 s of sound but only 1\.00 s decode"):
        load_audio(cut, 16_000)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "stream.mp4"
    os.mkfifo(fifo)
    [source] = resolve_sources([str(fifo)])
    with pytest.raises(StageError) as caught:
        Prober(DecodeConfig())(source)
    assert (caught.value.stage, caught.value.error) == ("probe", "not_a_file")
    assert "not a regular file" in caught.value.message
