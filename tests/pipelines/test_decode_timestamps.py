"""Frames whose timestamps are out of order or missing: every source frame once, in display order,
and the sound placed right against the first frame. The files are written as the reported ones
were: B-frames in AVI (H.264, MPEG-4 Part 2, and DivX/Xvid packed bitstream), MPEG-TS video
whose PES headers carry no timestamp, sound that starts before the first frame.

Each source frame carries its index as a binary code of eight squares, so the test reads which
source frame each output frame shows. Output and source are both 25 fps, so the output must be
exactly the source frames 0, 1, 2, ... in order.
"""

from fractions import Fraction

import av
import numpy as np
import pytest

from pseudo3d.config import DecodeConfig
from pseudo3d.pipelines.decode import DisplayClock, FrameDecoder, decode_audio
from pseudo3d.pipelines.probe import Prober
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.synth.bad_kinds import strip_video_pes_timestamps
from pseudo3d.synth.bad_writer import AudioTrack, VideoTrack, write_media

WIDTH, HEIGHT = 160, 96
N_FRAMES = 60
RATE = 48_000
BURST_FRAME = 10  # the sound starts with this frame
X264_B_FRAMES = {"preset": "veryfast", "crf": "16", "bf": "3", "x264-params": "threads=1:b-pyramid=normal"}
MPEG4_B_FRAMES = {"bf": "2", "g": "12", "qscale": "3"}


def counter_image(index: int) -> np.ndarray:
    """A frame showing ``index`` as 8 bright (1) or dark (0) squares, least significant bit left,
    above a bar that moves (so encoders use B-frames)."""
    image = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    for bit in range(8):
        if index >> bit & 1:
            image[16:48, 6 + bit * 19:6 + bit * 19 + 14] = 230
    left = (index * 7) % (WIDTH - 24)
    image[64:88, left:left + 24] = (200, 90, 40)
    return image


def read_counter(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(8) if image[24:40, 9 + bit * 19:9 + bit * 19 + 8].mean() > 135)


def burst(n_samples: int, start_s: float) -> np.ndarray:
    """(1, n) mono silence, then a 1 kHz tone at half scale from ``start_s``."""
    t = np.arange(n_samples) / RATE
    return np.where(t >= start_s, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)[None]


def write_counter_clip(path, container, codec="libx264", options=X264_B_FRAMES, audio_codec=None,
                       video_start_s=0.0, audio_start_s=0.0, burst_at_s=BURST_FRAME / 25):
    """``N_FRAMES`` counter frames at 25 fps from ``video_start_s``; with ``audio_codec``, sound
    from ``audio_start_s`` to the end of the video, silent until ``burst_at_s`` (clock time)."""
    times = video_start_s + np.arange(N_FRAMES) / 25
    video = VideoTrack([counter_image(i) for i in range(N_FRAMES)], times, WIDTH, HEIGHT, Fraction(25),
                       codec=codec, options=dict(options))
    tracks = []
    if audio_codec is not None:
        n_samples = int(round((video_start_s + N_FRAMES / 25 - audio_start_s) * RATE))
        samples = burst(n_samples, burst_at_s - audio_start_s)
        tracks.append(AudioTrack(samples, codec=audio_codec, start_s=audio_start_s))
    return write_media(path, container, video, tracks)


def decode(path):
    config = DecodeConfig(fps=25.0, require_audio=False)
    source = resolve_sources([str(path)])[0]
    probe = Prober(config)(source)
    shown = [read_counter(frame.image) for frame in FrameDecoder(source, probe, config)]
    audio = decode_audio(source, probe, 16000) if probe.has_audio else None
    return probe, shown, audio


def raw_times(path) -> list[float | None]:
    """The times PyAV attaches to the decoded frames, in decoding order."""
    with av.open(str(path)) as container:
        return [frame.time for frame in container.decode(video=0)]


def onset(audio: np.ndarray) -> int:
    return int(np.flatnonzero(np.abs(audio) > 0.1)[0])


@pytest.mark.parametrize("codec, options", [("libx264", X264_B_FRAMES), ("mpeg4", MPEG4_B_FRAMES)])
def test_avi_with_b_frames_uses_every_frame_once_and_keeps_the_sound_start(tmp_path, codec, options):
    path = write_counter_clip(tmp_path / "b_frames.avi", "avi", codec, options, audio_codec="pcm_s16le")
    times = raw_times(path)
    # What FFmpeg reports: times from the decoding order plus the B-frame delay.
    assert times[0] == pytest.approx(0.04)
    if codec == "libx264":
        assert any(later <= earlier for earlier, later in zip(times, times[1:]))
    probe, shown, audio = decode(path)
    assert shown == list(range(N_FRAMES))
    # AVI shows frame 0 at the stream's start, where its sound starts: nothing is cut off it.
    assert probe.video_start_s == 0.0
    assert onset(audio) == pytest.approx(BURST_FRAME / 25 * 16000, abs=2)
    assert audio.shape[0] == N_FRAMES / 25 * 16000


def _vop_type(data: bytes) -> str:
    start = data.find(b"\x00\x00\x01\xb6")
    return "IPBS"[data[start + 4] >> 6]


def _not_coded_vop(time_increment: int, increment_bits: int) -> bytes:
    """An MPEG-4 Part 2 N-VOP: a P-VOP header with vop_coded = 0, then stuffing to a byte."""
    bits = "01" + "0" + "1" + format(time_increment, f"0{increment_bits}b") + "1" + "0" + "0"
    bits += "1" * (-len(bits) % 8)
    return b"\x00\x00\x01\xb6" + int(bits, 2).to_bytes(len(bits) // 8, "big")


def pack_b_frames(source, target):
    """Rewrite an MPEG-4 Part 2 AVI with B-frames the way DivX and Xvid 'packed bitstream' files
    store them: a reference frame and the B-frame shown before it share one chunk, the next chunk
    is an N-VOP placeholder, and the stream's header says ``DivX503b1393p`` ('p': packed)."""
    with av.open(str(source)) as opened:
        stream = opened.streams.video[0]
        header = bytes(stream.codec_context.extradata)
        packets = [(bytes(packet), packet.is_keyframe) for packet in opened.demux(stream) if packet.size]
    chunks, index = [], 0
    while index < len(packets):
        data, key = packets[index]
        if _vop_type(data) in "IP" and index + 1 < len(packets) and _vop_type(packets[index + 1][0]) == "B":
            chunks += [(data + packets[index + 1][0], key), (_not_coded_vop((index + 1) % 25, 5), False)]
            index += 2
        else:
            chunks.append((data, key))
            index += 1
    with av.open(str(source)) as opened, av.open(str(target), "w", format="avi") as output:
        stream = output.add_stream_from_template(opened.streams.video[0])
        stream.codec_context.extradata = header + b"\x00\x00\x01\xb2DivX503b1393p"
        for number, (data, key) in enumerate(chunks):
            packet = av.Packet(data)
            packet.stream, packet.time_base = stream, Fraction(1, 25)
            packet.pts = packet.dts = number
            packet.is_keyframe = key
            output.mux(packet)
    return target


def test_packed_bitstream_avi_uses_every_frame_once(tmp_path):
    """25 fps gives a VOP time increment resolution of 25, coded in 5 bits."""
    plain = write_counter_clip(tmp_path / "plain.avi", "avi", "mpeg4", {"bf": "1", "g": "12", "qscale": "3"})
    path = pack_b_frames(plain, tmp_path / "packed.avi")
    times = raw_times(path)
    assert len(times) == N_FRAMES and sum(later <= earlier for earlier, later in zip(times, times[1:])) > 10
    probe, shown, _ = decode(path)
    assert shown == list(range(N_FRAMES))
    assert probe.video_start_s == 0.0


@pytest.mark.parametrize("every", [2, 3])
def test_frames_without_timestamps_are_used_once_in_order(tmp_path, every):
    whole = write_counter_clip(tmp_path / "whole.ts", "mpegts", audio_codec="aac", video_start_s=0.12,
                               audio_start_s=0.12, burst_at_s=0.12 + BURST_FRAME / 25)
    data, stripped = strip_video_pes_timestamps(whole.read_bytes(), every=every)
    path = tmp_path / "stripped.ts"
    path.write_bytes(data)
    times = raw_times(path)
    assert times[0] is None and sum(t is None for t in times) >= stripped - 2 > N_FRAMES // every - 4
    probe, shown, audio = decode(path)
    assert shown == list(range(N_FRAMES))
    # The first frame's time is counted back from the first timestamp after it.
    assert probe.video_start_s == pytest.approx(0.12, abs=1e-3)
    assert onset(audio) == pytest.approx(BURST_FRAME / 25 * 16000, abs=0.004 * 16000)  # AAC's ramp


def test_audio_starting_before_the_video_is_cut_to_the_first_frame(tmp_path):
    for container in ("mp4", "matroska"):
        path = write_counter_clip(tmp_path / f"early.{container}", container, audio_codec="aac",
                                  video_start_s=0.48, audio_start_s=0.0, burst_at_s=0.98)
        probe, shown, audio = decode(path)
        assert probe.video_start_s == pytest.approx(0.48, abs=1e-3), container
        assert shown == list(range(N_FRAMES)), container
        # The tone starts 0.98 s into the sound, 0.5 s after the first frame.
        assert onset(audio) == pytest.approx(0.5 * 16000, abs=0.004 * 16000), container
        assert audio.shape[0] == pytest.approx(N_FRAMES / 25 * 16000, abs=0.03 * 16000), container


def _clock(times, period=1.0):
    class Stamped:
        def __init__(self, time):
            self.time = time

    return [time for _, time in DisplayClock(period, depth=4).times(Stamped(t) for t in times)]


def test_display_clock_rules():
    assert _clock([0, 1, 2, 3.5, 4]) == [0, 1, 2, 3.5, 4]                # in order: unchanged (VFR kept)
    assert _clock([1, 2, 4, 3, 5, 7, 6]) == [1, 2, 3, 4, 5, 6, 7]         # swapped within the window
    assert _clock([None, None, 7, None, 9]) == [5, 6, 7, 8, 9]           # counted back, then on
    assert _clock([0, 1, 1, 2]) == [0, 1, 2, 3]                           # a repeated time: the next one
    assert _clock([5, 6, 7, 8, 9, 10, 11, 0, 1]) == [5, 6, 7, 8, 9, 10, 11, 12, 13]  # a clock reset: counted on
    assert _clock([None, None]) == [0, 1]
