"""Decode+track stage: one probed source in, its clips (landmarks, crops, audio) out, each as
soon as its face track ends.

Runs on CPU workers. Frames stream from the decoder through shot-cut detection and the face
tracker and are dropped right away; only per-frame landmarks, scores and (when a backend or the
output wants them) 224×224 crops are kept, and only from the start of the face track still open.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable, Iterator, cast

import numpy as np

from pseudo3d.config import DecodeConfig, TrackConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.crops import crop_square, crop_transform, warp_crop
from pseudo3d.pipelines.cuts import ShotCutDetector
from pseudo3d.pipelines.decode import FrameDecoder, SourceAudio, frame_samples
from pseudo3d.pipelines.face_tracker import FaceTracker
from pseudo3d.pipelines.face_window import landmark_angle, quarter_turns
from pseudo3d.pipelines.media import rotate_image, rotate_points
from pseudo3d.pipelines.segment import Segment, TrackSegmenter
from pseudo3d.pipelines.thumbnails import ThumbnailPicker
from pseudo3d.qa.syncnet_scoring import CROP_SIZE, crop_for_syncnet, crop_windows, landmark_face_boxes
from pseudo3d.schemas.records import CHUNK_CLIPS, Clip, Failure, ProbeInfo, Source

STAGE = "track"
_MISORIENTED = ("the face's landmarks disagreed with the detector's eye and mouth keypoints (a sideways or "
                "upside-down face the tracker could not resolve)")
AUDIO_SHORT_TOLERANCE_S = 0.5
"""Audio ending up to this long before the video is zero-padded; a larger shortfall drops the
frames without sound (a ``decode``/``audio_short`` row)."""


class TrackedSource:
    """The clips of one source, yielded as decoding reaches the end of each (iterate once).

    ``failures`` and ``n_frames`` are complete when the iteration has ended. The iteration
    raises ``StageError`` when no face is found at all; it yields no clips (and a row per short
    track) when every face track is too short.
    """

    def __init__(self, stage: DecodeTrack, source: Source, probe: ProbeInfo):
        self.failures: list[Failure] = []
        """Rows for what was lost without failing the source: short face tracks, a broken tail."""
        self.n_frames = 0
        """Output-grid frames decoded."""
        self._clips = stage.clips(source, probe, self)

    def __iter__(self) -> Iterator[Clip]:
        return self._clips


class DecodeTrack:
    """Probed source → its clips, as they end (:class:`TrackedSource`).

    Frames go through shot-cut detection and the face tracker and are dropped right away; the
    per-frame landmarks, scores and crops are kept only from the start of the face track still
    open (:class:`~pseudo3d.pipelines.segment.TrackSegmenter`), so memory follows the length of
    a clip, not of the video. So is the sound: it is read as the frames come, from the first
    face on (:class:`SoundGate`), and forgotten behind the open track.
    """

    def __init__(self, decode: DecodeConfig, track: TrackConfig, want_crops: bool = False,
                 want_sync_crops: bool = False, max_duration_s: float = float("inf"),
                 progress: Callable[[], None] = lambda: None, crop: str = "deca"):
        self.decode = decode
        self.track = track
        self.crop = crop
        """The crop convention (:data:`~pseudo3d.pipelines.crops.CROP_CONVENTIONS`): the backend's."""
        self.max_frames = math.floor(max_duration_s * decode.fps) if math.isfinite(max_duration_s) else None
        """Decoding stops with ``decode``/``too_long`` past this many output frames (``limits.max_duration_s``),
        which bounds an input whose duration was not declared (the probe could not refuse it)."""
        self.progress = progress
        """Called after every decoded frame (the runner's stall watch)."""
        self.want_crops = want_crops
        self.want_sync_crops = want_sync_crops
        """Also cut SyncNet's crops (``Clip.sync_crops``) for sources with audio (``qa.sync_model``)."""
        self._tracker: FaceTracker | None = None

    @property
    def tracker(self) -> FaceTracker:
        if self._tracker is None:
            self._tracker = FaceTracker(self.track)
        return self._tracker

    def __call__(self, source: Source, probe: ProbeInfo) -> TrackedSource:
        return TrackedSource(self, source, probe)

    def segmenter(self, first_frame: int = 0) -> TrackSegmenter:
        fps = self.decode.fps
        return TrackSegmenter(max_gap=int(round(self.track.max_gap_s * fps)),
                              min_frames=int(np.ceil(self.track.min_clip_s * fps - 1e-9)),
                              max_frames=int(np.floor(self.track.max_clip_s * fps + 1e-9)),
                              max_jump=self.track.max_jump, first_frame=first_frame)

    def clips(self, source: Source, probe: ProbeInfo, result: TrackedSource) -> Iterator[Clip]:
        """The loop behind :class:`TrackedSource`: decode, track, segment, and yield each clip
        as its face track ends (filling ``result``'s rows and frame count). A chunk of a long
        source (``source.chunk``) is decoded from a seek to its first frame to its last, with the
        tracker reset at its start: its clips lie inside it."""
        fps = self.decode.fps
        chunk = source.chunk
        first, stop = (0, None) if chunk is None else (chunk.start_frame, chunk.stop_frame)
        decoder = FrameDecoder(source, probe, self.decode, first, stop)
        tracker = self.tracker
        tracker.reset()
        cut_detector = ShotCutDetector(self.track.cut_threshold)
        thumbnails = ThumbnailPicker(fps)
        segmenter = self.segmenter(first)
        log = _FrameLog(first)
        sync = (SyncCropper(FrameDecoder(source, probe, self.decode, first, stop), self.progress)
                if self.want_sync_crops and probe.has_audio else None)
        audio = SourceAudio(source, probe, self.decode.sample_rate, start_s=first / fps)
        cut_clip = _ClipCutter(source, probe, fps, self.decode.sample_rate, self.want_crops, log, thumbnails, audio,
                               sync, first_index=0 if chunk is None else chunk.index * CHUNK_CLIPS)
        gate: SoundGate | None = None  # from the first face on: frames wait for the sound under them
        too_short: list[Failure] = []
        misoriented = faces = 0  # frames whose landmarks the tracker dropped for disagreeing with the detector; tracked
        box = None
        size = self.track.crop_size

        def feed(frames: list[tuple[np.ndarray | None, bool]]) -> Iterator[Clip]:
            start = segmenter.start
            for points, cut in frames:
                for segment in segmenter.push(points, cut):
                    yield from self._segment(segment, cut_clip, too_short)
            if segmenter.start > start:  # what no clip to come needs
                log.forget_before(segmenter.start)
                thumbnails.forget_before(segmenter.start)
                audio.forget_before(frame_samples(segmenter.start, 0, fps, self.decode.sample_rate)[0])

        try:
            for frame in decoder:
                self.progress()
                if self.max_frames is not None and frame.index >= self.max_frames:
                    raise StageError("decode", "too_long", f"decoded past limits.max_duration_s = "
                                                           f"{self.max_frames / fps:g} s (the file declares no length)")
                if frame.damaged:  # its source frame did not decode: a gap, like a lost face; the frame
                    tracker.reset()  # repeats the last decoded picture, cropped where the face last was
                    cut, points, score = False, None, 0.0
                else:
                    cut = cut_detector(frame.image)
                    if cut:
                        tracker.reset()
                        box = None
                    observation = tracker(frame.image)
                    points = None if observation.landmarks is None else observation.landmarks / frame.scale
                    score = observation.confidence
                    misoriented += observation.rejected == "orientation"
                    if points is not None:
                        faces += 1
                        box = crop_square(points, self.crop, self.track.crop_scale)
                        if thumbnails.wants(frame.index):
                            thumbnails.offer(frame.index, frame.image, points, frame.scale, (probe.width, probe.height))
                if box is None:
                    transform = np.full((2, 3), np.nan, np.float32)
                    crop = np.zeros((size, size, 3), np.uint8) if self.want_crops else None
                else:
                    transform = crop_transform(*box, size=size)
                    crop = None
                    if self.want_crops:
                        working = transform.copy()
                        working[:, :2] /= frame.scale  # the frame is in working pixels, the box in source pixels
                        crop = warp_crop(frame.image, working, size)
                log.append(score, transform.astype(np.float32), crop)
                if points is not None and gate is None:
                    gate = SoundGate(audio, fps)
                yield from feed([(points, cut)] if gate is None else gate.push(frame.index, points, cut))
            if gate is not None:
                yield from feed(gate.finish(segmenter.next_frame + len(gate.held)))
            for segment in segmenter.finish():  # the tracks still open at the end
                yield from self._segment(segment, cut_clip, too_short)
        finally:
            audio.close()
            if sync is not None:
                sync.close()

        end = segmenter.next_frame  # the output frame after the last one decoded
        n_frames = result.n_frames = end - first
        failures = result.failures
        if decoder.corrupt_packets:
            failures.append(Failure.of(
                source, "decode", "corrupt_packets",
                f"{decoder.corrupt_packets} packet(s) of the video stream did not decode; the "
                f"{decoder.damaged_frames} output frame(s) they held are treated as tracking gaps",
                duration_s=decoder.damaged_frames / fps))
        if decoder.error is not None:
            failures.append(Failure.of(source, decoder.error.stage, decoder.error.error, decoder.error.message))
        elif source.completes and (missing_s := _missing_tail_s(probe, end / fps)) > 0:
            failures.append(Failure.of(
                source, "decode", "truncated",
                f"the video stream declares {probe.video_duration_s:.2f} s but its frames end at "
                f"{end / fps:.2f} s: the file is cut short (a partial download or copy?); the "
                f"missing {missing_s:.2f} s are lost", duration_s=missing_s))
        if not faces:
            if misoriented:
                raise StageError(STAGE, "face_orientation", f"{_MISORIENTED} in {misoriented} of the {n_frames} "
                                                            f"frames, and no other face was tracked")
            raise StageError(STAGE, "no_face", f"no face found in any of the {n_frames} frames "
                                               f"({n_frames / fps:.1f} s)")
        if misoriented:
            failures.append(Failure.of(source, STAGE, "face_orientation",
                                       f"{_MISORIENTED} in {misoriented} frame(s); they are treated as tracking gaps",
                                       duration_s=misoriented / fps))
        if gate is not None and gate.cut_off:
            usable = max(first, min(end, gate.frames_with_sound))
            lost_s = (end - usable) / fps
            short_audio = Failure.of(
                source, "decode", "audio_short",
                f"the audio ends at {audio.length_s:.2f} s, {lost_s:.2f} s before the "
                f"video; the frames after it are not used", clip=f"{usable / fps:.2f}-{end / fps:.2f}s",
                duration_s=lost_s)
            failures.append(short_audio)
            if not cut_clip.emitted:
                raise StageError("decode", "audio_short", f"{short_audio.message}, and no face track of "
                                                          f"track.min_clip_s={self.track.min_clip_s:g} s is left before it")
        failures.extend(too_short)

    def _segment(self, segment: Segment, cut_clip: _ClipCutter, too_short: list[Failure]) -> Iterator[Clip]:
        """The clip of a finished segment, or its ``clip_too_short`` row."""
        fps = self.decode.fps
        if segment.too_short:
            too_short.append(Failure.of(
                cut_clip.source, STAGE, "clip_too_short",
                f"face track of {(segment.stop - segment.start) / fps:.2f} s is shorter than track.min_clip_s="
                f"{self.track.min_clip_s:g} s", clip=f"{segment.start / fps:.2f}-{segment.stop / fps:.2f}s",
                duration_s=(segment.stop - segment.start) / fps))
            return
        yield cut_clip(segment)


class SoundGate:
    """Holds back the frames past the end of the sound read so far until it is known whether they
    have sound under them (docs: :data:`AUDIO_SHORT_TOLERANCE_S`).

    For each frame the sound is read on to 1 s past it, never further (a forged timestamp jump
    is never filled past the video). A frame the sound already reaches passes at once. A later
    one waits until more sound arrives, or until it is decided that the video outlasts its sound
    by more than the tolerance (the stream has ended, or the video has): then it passes without
    its landmarks, as a tracking gap, and the source gets a ``decode``/``audio_short`` row.
    """

    READ_AHEAD_S = 1.0

    def __init__(self, audio: SourceAudio, fps: float):
        self.audio = audio
        self.fps = fps
        self.held: deque[tuple[int, np.ndarray | None, bool]] = deque()
        self.cut_off = False
        """Decided: the video outlasts its sound by more than the tolerance."""

    @property
    def frames_with_sound(self) -> int | float:
        """Output frames wholly under the sound read so far (infinite without an audio stream)."""
        length_s = self.audio.length_s
        return length_s if math.isinf(length_s) else int(np.floor(length_s * self.fps + 1e-9))

    def push(self, index: int, points: np.ndarray | None, cut: bool) -> list[tuple[np.ndarray | None, bool]]:
        """Take frame ``index``; return the frames (``(points, cut)``, in order) whose fate is known."""
        self.audio.read_to((index + 1) / self.fps + self.READ_AHEAD_S)
        self.held.append((index, points, cut))
        if not self.cut_off and self.audio.exhausted and self._outlasts(index + 1):
            self.cut_off = True
        return self._release(final=False)

    def finish(self, n_frames: int) -> list[tuple[np.ndarray | None, bool]]:
        """The frames still held, once the video has ended after ``n_frames`` (no more sound is
        read: what was read is the source's sound)."""
        self.audio.finish()
        self.cut_off = self.cut_off or self._outlasts(n_frames)
        return self._release(final=True)

    def _outlasts(self, n_frames: int) -> bool:
        return self.audio.length_s < n_frames / self.fps - AUDIO_SHORT_TOLERANCE_S

    def _release(self, final: bool) -> list[tuple[np.ndarray | None, bool]]:
        out = []
        with_sound = self.frames_with_sound
        while self.held:
            index, points, cut = self.held[0]
            if index < with_sound or (final and not self.cut_off):
                out.append((points, cut))
            elif self.cut_off:
                out.append((None, cut))
            else:
                break
            self.held.popleft()
        return out


class _FrameLog:
    """Per-frame tracking results (detector score, crop transform, crop) from a moving start."""

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.confidence: list[float] = []
        self.transforms: list[np.ndarray] = []
        self.crops: list[np.ndarray | None] = []

    def append(self, score: float, transform: np.ndarray, crop: np.ndarray | None) -> None:
        self.confidence.append(score)
        self.transforms.append(transform)
        self.crops.append(crop)

    def forget_before(self, index: int) -> None:
        n = index - self.start
        if n > 0:
            del self.confidence[:n], self.transforms[:n], self.crops[:n]
            self.start = index

    def span(self, start: int, stop: int) -> slice:
        return slice(start - self.start, stop - self.start)


class _ClipCutter:
    """A finished segment → its :class:`Clip`, with the per-frame results, sound, crops and
    thumbnail of its frames (and SyncNet's crops, decoded on a second pass kept in step)."""

    def __init__(self, source: Source, probe: ProbeInfo, fps: float, sample_rate: int, want_crops: bool,
                 log: _FrameLog, thumbnails: ThumbnailPicker, audio: SourceAudio, sync: SyncCropper | None,
                 first_index: int = 0):
        self.source, self.probe, self.fps, self.sample_rate = source, probe, fps, sample_rate
        self.want_crops, self.log, self.thumbnails, self.sync = want_crops, log, thumbnails, sync
        self.audio = audio
        self.first_index = first_index
        """The first clip's index (a chunk's clips are numbered from its own block of indices)."""
        self.emitted = 0

    def __call__(self, segment: Segment) -> Clip:
        start, stop = segment.start, segment.stop
        if segment.landmarks is None or segment.interpolated is None:
            raise ValueError(f"frames {start}-{stop}: a too-short segment has no clip")  # the caller files those
        frames = self.log.span(start, stop)
        clip = Clip(
            source=self.source,
            clip_index=self.first_index + self.emitted,
            start_frame=start,
            fps=self.fps,
            image_size=(self.probe.width, self.probe.height),
            landmarks=segment.landmarks,
            confidence=np.asarray(self.log.confidence[frames], np.float32),
            interpolated=segment.interpolated,
            crop_transforms=np.stack(self.log.transforms[frames]),
            audio=self.audio.clip(start, stop - start, self.fps),
            sample_rate=self.sample_rate,
            # with want_crops every frame logs a crop, so no entry is None
            crops=np.stack(cast("list[np.ndarray]", self.log.crops[frames])) if self.want_crops else None,
            has_audio=self.probe.has_audio,
            thumbnail=self.thumbnails.for_clip(start, stop),
        )
        if self.sync is not None:
            self.sync(clip)
        self.emitted += 1
        return clip


class SyncCropper:
    """Sets each clip's ``sync_crops`` from a second decoder over the source, advanced clip by clip.

    SyncNet's crop windows are median-filtered along the face track (the reference's rule,
    :func:`~pseudo3d.qa.syncnet_scoring.crop_windows`), so they are known only once a clip has
    ended; decoding again costs less than keeping the clip's frames meanwhile. Clips come in
    order, so one pass of the second decoder serves them all. A face turned sideways or upside
    down (video without a rotation tag) is cut from the frame turned by the quarter turns that
    set it upright, as SyncNet was trained on upright faces.
    """

    def __init__(self, decoder: FrameDecoder, progress: Callable[[], None] = lambda: None):
        self._frames = iter(decoder)
        self.progress = progress

    def __call__(self, clip: Clip) -> None:
        turns = upright_turns(clip.landmarks)
        width, height = clip.image_size
        points = rotate_points(clip.landmarks[..., :2], 90 * turns, width, height)
        windows = crop_windows(landmark_face_boxes(points))
        crops = np.zeros((clip.n_frames, CROP_SIZE, CROP_SIZE, 3), np.uint8)
        last = clip.start_frame + clip.n_frames - 1
        for frame in self._frames:
            self.progress()
            offset = frame.index - clip.start_frame
            if offset >= 0:
                # Windows are in source pixels; the decoded frame may be downscaled (decode.max_side).
                crops[offset] = crop_for_syncnet(rotate_image(frame.image, 90 * turns),
                                                 np.floor(windows[offset] * frame.scale))
            if frame.index >= last:
                break
        clip.sync_crops = crops

    def close(self) -> None:
        """Stop the second decoder (closes its file)."""
        self._frames.close()


def upright_turns(landmarks: np.ndarray) -> int:
    """Counter-clockwise quarter turns (0-3) of the image that set a face track upright: the
    nearest to the track's mean in-plane angle (``landmarks`` (T, 478, 2+) pixels)."""
    angles = np.array([landmark_angle(points) for points in landmarks])
    mean = math.atan2(float(np.mean(np.sin(angles))), float(np.mean(np.cos(angles))))
    return quarter_turns(mean)



TRUNCATION_TOLERANCE_S = 1.0
"""Frames ending this much (or 2 % of the length, if more) before the declared length of the
video stream count as a truncated file: headers round, and edit lists trim a little."""


def _missing_tail_s(probe: ProbeInfo, decoded_s: float) -> float:
    """Seconds of video the header declares beyond the decoded frames, when beyond the tolerance; else 0."""
    declared = probe.video_duration_s
    if not declared or declared <= 0:
        return 0.0
    missing = declared - decoded_s
    return missing if missing > max(TRUNCATION_TOLERANCE_S, 0.02 * declared) else 0.0
