"""Decode+track stage: one probed source in, its clips (landmarks, crops, audio) out.

Runs on CPU workers. Frames stream from the decoder through shot-cut detection and the face
tracker and are dropped right away; only per-frame landmarks, scores and (when a backend or the
output wants them) 224×224 crops are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from pseudo3d.config import DecodeConfig, TrackConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.crops import crop_transform, face_box, warp_crop
from pseudo3d.pipelines.cuts import ShotCutDetector
from pseudo3d.pipelines.decode import FrameDecoder, decode_audio, slice_audio
from pseudo3d.pipelines.face_tracker import N_LANDMARKS, FaceTracker
from pseudo3d.pipelines.face_window import landmark_angle, quarter_turns
from pseudo3d.pipelines.media import rotate_image, rotate_points
from pseudo3d.pipelines.segment import segment_track
from pseudo3d.pipelines.thumbnails import ThumbnailPicker
from pseudo3d.qa.syncnet_scoring import CROP_SIZE, crop_for_syncnet, crop_windows, landmark_face_boxes
from pseudo3d.schemas.records import Clip, Failure, ProbeInfo, Source

STAGE = "track"
_MISORIENTED = ("the face's landmarks disagreed with the detector's eye and mouth keypoints (a sideways or "
                "upside-down face the tracker could not resolve)")
AUDIO_SHORT_TOLERANCE_S = 0.5
"""Audio ending up to this long before the video is zero-padded; a larger shortfall drops the
frames without sound (a ``decode``/``audio_short`` row)."""


@dataclass
class TrackedSource:
    clips: list[Clip]
    failures: list[Failure] = field(default_factory=list)
    """Rows for what was lost without failing the source: short face tracks, a broken tail."""
    n_frames: int = 0
    """Output-grid frames decoded."""


class DecodeTrack:
    """Probed source → clips. Raises ``StageError`` when no face is found at all; returns no
    clips (and a row per short track) when every face track is too short."""

    def __init__(self, decode: DecodeConfig, track: TrackConfig, want_crops: bool = False,
                 want_sync_crops: bool = False, max_duration_s: float = float("inf"),
                 progress: Callable[[], None] = lambda: None):
        self.decode = decode
        self.track = track
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
        fps = self.decode.fps
        decoder = FrameDecoder(source, probe, self.decode)
        tracker = self.tracker
        tracker.reset()
        cut_detector = ShotCutDetector(self.track.cut_threshold)
        thumbnails = ThumbnailPicker(fps)
        landmarks, confidence, cut_before, transforms, crops = [], [], [], [], []
        misoriented = 0  # frames whose landmarks the tracker dropped for disagreeing with the detector
        nan_landmarks = np.full((N_LANDMARKS, 3), np.nan, np.float32)
        box = None
        size = self.track.crop_size
        for frame in decoder:
            self.progress()
            if self.max_frames is not None and frame.index >= self.max_frames:
                raise StageError("decode", "too_long", f"decoded past limits.max_duration_s = "
                                                       f"{self.max_frames / fps:g} s (the file declares no length)")
            if frame.damaged:  # its source frame did not decode: a gap, like a lost face
                tracker.reset()
                cut, points, score, box = False, None, 0.0, None
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
                    box = face_box(points)
                    if thumbnails.wants(frame.index):
                        thumbnails.offer(frame.index, frame.image, points, frame.scale, (probe.width, probe.height))
            landmarks.append(nan_landmarks if points is None else points)
            confidence.append(score)
            cut_before.append(cut)
            if box is None:
                transforms.append(np.full((2, 3), np.nan))
                if self.want_crops:
                    crops.append(np.zeros((size, size, 3), np.uint8))
                continue
            transform = crop_transform(*box, scale=self.track.crop_scale, size=size)
            transforms.append(transform)
            if self.want_crops:
                working = transform.copy()
                working[:, :2] /= frame.scale  # the frame is in working pixels, the box in source pixels
                crops.append(warp_crop(frame.image, working, size))

        n_frames = len(landmarks)
        failures = []
        if decoder.corrupt_packets:
            failures.append(Failure.of(
                source, "decode", "corrupt_packets",
                f"{decoder.corrupt_packets} packet(s) of the video stream did not decode; the "
                f"{decoder.damaged_frames} output frame(s) they held are treated as tracking gaps",
                duration_s=decoder.damaged_frames / fps))
        if decoder.error is not None:
            failures.append(Failure.of(source, decoder.error.stage, decoder.error.error, decoder.error.message))
        elif (missing_s := _missing_tail_s(probe, n_frames / fps)) > 0:
            failures.append(Failure.of(
                source, "decode", "truncated",
                f"the video stream declares {probe.video_duration_s:.2f} s but its frames end at "
                f"{n_frames / fps:.2f} s: the file is cut short (a partial download or copy?); the "
                f"missing {missing_s:.2f} s are lost", duration_s=missing_s))
        landmarks = np.stack(landmarks)
        tracked = ~np.isnan(landmarks[:, 0, 0])
        if not tracked.any():
            if misoriented:
                raise StageError(STAGE, "face_orientation", f"{_MISORIENTED} in {misoriented} of the {n_frames} "
                                                            f"frames, and no other face was tracked")
            raise StageError(STAGE, "no_face", f"no face found in any of the {n_frames} frames "
                                               f"({n_frames / fps:.1f} s)")
        if misoriented:
            failures.append(Failure.of(source, STAGE, "face_orientation",
                                       f"{_MISORIENTED} in {misoriented} frame(s); they are treated as tracking gaps",
                                       duration_s=misoriented / fps))
        # Sound past the last frame is never used: reading stops there (a forged timestamp jump in
        # untrusted input must not allocate hours of silence).
        audio = decode_audio(source, probe, self.decode.sample_rate, max_s=n_frames / fps + 1.0)
        usable = _frames_with_sound(audio, probe, n_frames, fps, self.decode.sample_rate)
        if usable < n_frames:
            lost_s = (n_frames - usable) / fps
            short_audio = Failure.of(
                source, "decode", "audio_short",
                f"the audio ends at {audio.shape[0] / self.decode.sample_rate:.2f} s, {lost_s:.2f} s before the "
                f"video; the frames after it are not used", clip=f"{usable / fps:.2f}-{n_frames / fps:.2f}s",
                duration_s=lost_s)
            failures.append(short_audio)
            tracked[usable:] = False
        segmentation = segment_track(
            landmarks, tracked, np.array(cut_before),
            max_gap=int(round(self.track.max_gap_s * fps)),
            min_frames=int(np.ceil(self.track.min_clip_s * fps - 1e-9)),
            max_frames=int(np.floor(self.track.max_clip_s * fps + 1e-9)),
            max_jump=self.track.max_jump,
        )
        for start, stop in segmentation.too_short:
            failures.append(Failure.of(
                source, STAGE, "clip_too_short",
                f"face track of {(stop - start) / fps:.2f} s is shorter than track.min_clip_s="
                f"{self.track.min_clip_s:g} s", clip=f"{start / fps:.2f}-{stop / fps:.2f}s",
                duration_s=(stop - start) / fps))
        if not segmentation.clips:
            if usable < n_frames:
                raise StageError("decode", "audio_short", f"{short_audio.message}, and no face track of "
                                                          f"track.min_clip_s={self.track.min_clip_s:g} s is left before it")
            return TrackedSource(clips=[], failures=failures, n_frames=n_frames)

        confidence = np.asarray(confidence, np.float32)
        transforms = np.stack(transforms).astype(np.float32)
        clips = []
        for index, (start, stop) in enumerate(segmentation.clips):
            clips.append(Clip(
                source=source,
                clip_index=index,
                start_frame=start,
                fps=fps,
                image_size=(probe.width, probe.height),
                landmarks=segmentation.landmarks[start:stop],
                confidence=confidence[start:stop],
                interpolated=segmentation.interpolated[start:stop],
                crop_transforms=transforms[start:stop],
                audio=slice_audio(audio, start, stop - start, fps, self.decode.sample_rate),
                sample_rate=self.decode.sample_rate,
                crops=np.stack(crops[start:stop]) if self.want_crops else None,
                has_audio=probe.has_audio,
                thumbnail=thumbnails.for_clip(start, stop),
            ))
        if self.want_sync_crops and probe.has_audio:
            add_sync_crops(clips, FrameDecoder(source, probe, self.decode), self.progress)
        return TrackedSource(clips=clips, failures=failures, n_frames=n_frames)


def add_sync_crops(clips: list[Clip], decoder: FrameDecoder, progress: Callable[[], None] = lambda: None) -> None:
    """Set every clip's ``sync_crops`` from a second pass over the source's frames.

    SyncNet's crop windows are median-filtered along the whole face track (the reference's rule,
    :func:`~pseudo3d.qa.syncnet_scoring.crop_windows`), so they are known only once tracking is
    done; decoding again costs less than keeping every frame of the source meanwhile. Only the
    frames of the clips are cut, and decoding stops after the last one. A face turned sideways
    or upside down (video without a rotation tag) is cut from the frame turned by the quarter
    turns that set it upright, as SyncNet was trained on upright faces.
    """
    if not clips:
        return
    wanted: dict[int, tuple[int, int, np.ndarray, int]] = {}  # frame → (clip, frame in clip, window, turns)
    for position, clip in enumerate(clips):
        turns = upright_turns(clip.landmarks)
        width, height = clip.image_size
        points = rotate_points(clip.landmarks[..., :2], 90 * turns, width, height)
        for offset, window in enumerate(crop_windows(landmark_face_boxes(points))):
            wanted[clip.start_frame + offset] = (position, offset, window, turns)
    crops = [np.zeros((clip.n_frames, CROP_SIZE, CROP_SIZE, 3), np.uint8) for clip in clips]
    last = max(wanted)
    for frame in decoder:
        progress()
        if frame.index > last:
            break
        hit = wanted.get(frame.index)
        if hit is not None:
            position, offset, window, turns = hit
            # Windows are in source pixels; the decoded frame may be downscaled (decode.max_side).
            crops[position][offset] = crop_for_syncnet(rotate_image(frame.image, 90 * turns),
                                                       np.floor(window * frame.scale))
    for clip, clip_crops in zip(clips, crops):
        clip.sync_crops = clip_crops


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


def _frames_with_sound(audio: np.ndarray, probe: ProbeInfo, n_frames: int, fps: float, sample_rate: int) -> int:
    """Output frames that have audio under them: all of them, unless the audio track ends more
    than :data:`AUDIO_SHORT_TOLERANCE_S` before the video (a shorter shortfall is zero-padded)."""
    if not probe.has_audio:
        return n_frames
    audio_s = audio.shape[0] / sample_rate
    if audio_s >= n_frames / fps - AUDIO_SHORT_TOLERANCE_S:
        return n_frames
    return min(n_frames, int(np.floor(audio_s * fps + 1e-9)))
