"""Typed build configuration.

Every option lives in a frozen dataclass that checks itself in ``__post_init__`` and raises a
:class:`~pseudo3d.errors.ConfigError` naming the option. A YAML file (``--config build.yaml``)
maps onto :class:`BuildConfig` section by section; unknown keys are refused by name, so a typo
never silently falls back to a default. ``configs/build.yaml`` in the repository lists every
option with its default and is tested against this module.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import yaml

from pseudo3d.config_mapping import dataclass_from_mapping
from pseudo3d.errors import ConfigError, require
from pseudo3d.files import file_sha256
from pseudo3d.schemas.records import CHUNK_CLIPS
from pseudo3d.smoothing.config import SmoothingSpec



_ASSET = {"asset": True}
"""Field metadata: a path to a user asset. The fingerprint holds the file's SHA-256, not the path,
so a dataset can be resumed where the same files live elsewhere."""
_RUNTIME = {"fingerprint": False}
"""Field metadata: a setting left out of the fingerprint, so a resume may change it: it changes speed,
not content, or (``reconstruct.device`` and ``batch_size`` for the torch backends) content only
within float32 noise on one device kind; the device kind and precision, which change more, are
checked at resume from the shards' ``numerics`` (docs/data-contract.md, Determinism)."""
_ADDED = {"fingerprint_at_default": False}
"""Field metadata: an option added after datasets were built without it. The fingerprint leaves it
out while it holds its default (what those datasets were built with), so they still resume."""


@dataclass(frozen=True)
class DecodeConfig:
    """How source videos are turned into frames and audio."""

    fps: float = 25.0
    """Output frame rate; source frames are picked by timestamp (nearest), so 29.97 fps and
    variable frame rate sources land on an exact grid."""
    sample_rate: int = 16000
    """Output audio sample rate in Hz (mono)."""
    max_side: int = 1280
    """Frames whose longer side exceeds this many pixels are downscaled before tracking.
    Landmarks are still reported in source-resolution display pixels (rotation applied, non-square
    pixels made square)."""
    require_audio: bool = True
    """A source without an audio stream becomes a failure row (stage ``probe``)."""
    chunk_s: float = 600.0
    """Sources longer than this are decoded and tracked in chunks of this many seconds, each a
    task of its own (seek, decode the chunk's frames and sound, tracker reset at its start), so a
    worker holds one chunk, never the whole video, and one long video can use several workers.
    No face track crosses a chunk's edge. A multiple of ``track.max_clip_s`` keeps the clip grid of
    a long face track (docs/data-contract.md, "Long sources")."""

    def __post_init__(self):
        require(1.0 <= self.fps <= 240.0, f"fps must be in [1, 240], got {self.fps}")
        require(self.chunk_s > 0, f"chunk_s must be > 0 seconds, got {self.chunk_s}")
        require(8000 <= self.sample_rate <= 96000, f"sample_rate must be in [8000, 96000] Hz, got {self.sample_rate}")
        require(self.max_side >= 64, f"max_side must be >= 64 pixels, got {self.max_side}")


@dataclass(frozen=True)
class LimitsConfig:
    """What one input may cost. Oversized or overlong inputs become failure rows; a worker stuck
    on an input (a hang in a decoder) is killed by a watchdog and its input becomes a failure row."""

    max_pixels: int = 3840 * 2160
    """Largest frame (width × height, as declared) accepted; bigger ones fail with ``too_large``.
    Frames are downscaled to ``decode.max_side`` for tracking, but decoding still pays full size."""
    max_duration_s: float = 4 * 3600.0
    """Longest input accepted, seconds; longer ones fail with ``too_long``."""
    allowed_protocols: tuple[str, ...] = ("file",)
    """Where inputs may come from: local files only by default. Add fsspec protocols (``s3``,
    ``gs``, ``http`` ...) to read remote inputs; list files cannot smuggle in others."""
    timeout_base_s: float = field(default=300.0, metadata=_RUNTIME)
    """Watchdog: every input may take this long, plus ``timeout_per_video_s`` per second of video."""
    timeout_per_video_s: float = field(default=30.0, metadata=_RUNTIME)
    """Watchdog: processing seconds allowed per second of video (after probing tells its length)."""
    stall_timeout_s: float = field(default=300.0, metadata=_RUNTIME)
    """Watchdog: a worker that shows no progress (no frame decoded, no clip finished) for this long
    is killed (``worker``/``timeout``), whatever its input's length; an input without a declared
    duration has only this watch (and stops at ``max_duration_s`` of decoded video)."""
    max_buffered_gb: float = field(default=2.0, metadata=_RUNTIME)
    """Finished outcomes the local runner's parent may hold while an earlier, slower source is
    still running (results are handed to the shard writer in input order); past it, no new
    source starts until the slow one ends."""
    threads_per_worker: int = field(default=0, metadata=_RUNTIME)
    """Native threads each worker may start (FFmpeg decoders, OpenCV, PyTorch); 0: the machine's
    cores divided by the local runner's workers, 1 per Ray actor or Beam worker."""
    transient_retries: int = field(default=2, metadata=_RUNTIME)
    """Times a source whose failure is transient (its worker crashed or timed out, an I/O error,
    out of memory: see ``pseudo3d.schemas.failures``) is built again at once, in a fresh worker,
    before its failure is committed. Permanent failures (a bad input) are never retried."""

    def __post_init__(self):
        require(self.stall_timeout_s > 0, f"stall_timeout_s must be > 0 seconds, got {self.stall_timeout_s}")
        require(self.max_buffered_gb > 0, f"max_buffered_gb must be > 0, got {self.max_buffered_gb}")
        require(isinstance(self.threads_per_worker, int) and self.threads_per_worker >= 0,
               f"threads_per_worker must be an integer >= 0, got {self.threads_per_worker!r}")
        require(isinstance(self.transient_retries, int) and self.transient_retries >= 0,
               f"transient_retries must be an integer >= 0, got {self.transient_retries!r}")
        require(self.max_pixels >= 64 * 64, f"max_pixels must be >= 4096, got {self.max_pixels}")
        require(self.max_duration_s > 0, f"max_duration_s must be > 0 seconds, got {self.max_duration_s}")
        require(self.timeout_base_s > 0, f"timeout_base_s must be > 0 seconds, got {self.timeout_base_s}")
        require(self.timeout_per_video_s >= 0, f"timeout_per_video_s must be >= 0, got {self.timeout_per_video_s}")
        require(isinstance(self.allowed_protocols, tuple) and all(isinstance(p, str) and p for p in self.allowed_protocols),
               f"allowed_protocols must be a list of protocol names, got {self.allowed_protocols!r}")


@dataclass(frozen=True)
class TrackConfig:
    """Face tracking, clip segmentation and face crops."""

    min_detection_confidence: float = 0.5
    """Face detector score needed to start (or restart) a track: the full-range detector's in the
    search over the whole frame, and the short-range one's in the face's own window (docs/tracking.md)."""
    min_tracking_confidence: float = 0.5
    """Landmark-model face presence below which the track counts as lost and the next frame
    runs the detector again."""
    min_clip_s: float = 2.0
    """Clips shorter than this are dropped, each recorded as a failure row (``clip_too_short``)."""
    max_clip_s: float = 60.0
    """Longer face tracks are split into clips no longer than this (and at least half as long),
    cut as the track goes on: a track of up to twice this is split into equal parts; a longer
    one loses a clip of this length off its front each time it reaches twice this, so a worker
    holds at most twice this much of a track (:mod:`pseudo3d.pipelines.segment`)."""
    max_gap_s: float = 0.2
    """Gaps in a track up to this long are interpolated and flagged; longer gaps split clips."""
    cut_threshold: float = 0.35
    """Colour-histogram (Bhattacharyya) distance between consecutive frames above which a shot
    cut is declared and the clip is split."""
    max_jump: float = 0.35
    """A face whose centre moves more than this fraction of its size in one frame is treated as
    a different track (a cut the histogram missed, or a switch to another face)."""
    max_faces: int = 2
    """Faces considered at once (the detector's best-scoring ones); the largest of them is
    followed, and another takes over only when it is 1.5 times larger. 1 follows whichever face
    the detector scores highest."""
    min_face_px: float = 32.0
    """Smallest face the search is sure to find: the detector box's side (about brows to chin,
    some 0.9 of forehead to chin), in pixels of the frame as tracked (after ``decode.max_side``
    downscaling). Frames more than ~17 times larger are also searched in tiles, which costs
    detector runs while no face is followed. Faces too small for the dataset are dropped by
    ``qa.min_face_size_px``."""
    find_rotated_faces: bool = True
    """Also search for faces turned by 90°, 180° or 270° (video whose rotation is not tagged);
    such a face is tracked in its own orientation and its landmarks are reported in frame
    pixels. Costs three detector runs on some of the frames without a followed face (every 5th,
    every 25th after a second without one)."""
    crop_size: int = 224
    """Side of the square face crops in pixels (DECA's input size)."""
    crop_scale: float = 1.25
    """Crop side relative to the landmark bounding box (DECA's convention)."""

    def __post_init__(self):
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}")
        require(self.min_clip_s > 0, f"min_clip_s must be > 0 seconds, got {self.min_clip_s}")
        require(self.max_clip_s >= self.min_clip_s,
               f"max_clip_s ({self.max_clip_s}) must be >= min_clip_s ({self.min_clip_s})")
        require(self.max_gap_s >= 0, f"max_gap_s must be >= 0 seconds, got {self.max_gap_s}")
        require(0 < self.cut_threshold <= 1, f"cut_threshold must be in (0, 1], got {self.cut_threshold}")
        require(self.max_jump > 0, f"max_jump must be > 0, got {self.max_jump}")
        require(1 <= self.max_faces <= 8, f"max_faces must be in [1, 8], got {self.max_faces}")
        require(8.0 <= self.min_face_px <= 1000.0, f"min_face_px must be in [8, 1000] pixels, got {self.min_face_px}")
        require(32 <= self.crop_size <= 1024, f"crop_size must be in [32, 1024] pixels, got {self.crop_size}")
        require(0.5 <= self.crop_scale <= 4.0, f"crop_scale must be in [0.5, 4], got {self.crop_scale}")


@dataclass(frozen=True)
class SmoothingConfig:
    """Savitzky–Golay settings per parameter group (window in seconds, polynomial order)."""

    mesh: SmoothingSpec = SmoothingSpec(window_s=0.28, polyorder=2)
    """The head-pose-free 3D landmark mesh (``mesh_*.npy``). 0.28 s is 7 frames at 25 fps: it
    halves the jitter (RMS second difference) while lip motion at syllable rate survives; see
    docs/smoothing.md for the measured trade-off."""
    landmarks_2d: SmoothingSpec = SmoothingSpec(window_s=0.28, polyorder=2)
    """Image-space landmarks (``landmarks_2d_*.npy``)."""
    head_rotation: SmoothingSpec = SmoothingSpec(window_s=0.3, polyorder=2)
    """Head rotation, smoothed as continuous unit quaternions."""
    head_translation: SmoothingSpec = SmoothingSpec(window_s=0.3, polyorder=2)
    head_scale: SmoothingSpec = SmoothingSpec(window_s=0.3, polyorder=2)
    flame_expression: SmoothingSpec = SmoothingSpec(window_s=0.28, polyorder=2)
    """FLAME expression coefficients (``deca``, ``flame-fit``)."""
    flame_jaw_pose: SmoothingSpec = SmoothingSpec(window_s=0.28, polyorder=2)
    """FLAME jaw rotation, smoothed as continuous unit quaternions."""
    flame_global_pose: SmoothingSpec = SmoothingSpec(window_s=0.3, polyorder=2)
    """FLAME global (head) rotation, smoothed as continuous unit quaternions."""
    flame_camera: SmoothingSpec = SmoothingSpec(window_s=0.3, polyorder=2)
    """Weak-perspective camera (scale, tx, ty)."""


@dataclass(frozen=True)
class QAConfig:
    """Per-clip quality filters. A clip outside a threshold is not written; it becomes a failure
    row (stage ``qa``, error = the metric) instead. Audio thresholds apply only to sources that
    have an audio stream; a metric that could not be measured (NaN) never filters. See
    docs/qa.md for each metric."""

    enabled: bool = True
    """False keeps every clip (the metrics are still computed and written)."""
    min_confidence_mean: float = 0.5
    """Mean face-detector score over the clip."""
    max_interpolated_fraction: float = 0.25
    """Share of frames whose landmarks were interpolated across tracking gaps."""
    min_face_size_px: float = 64.0
    """Median face size (square root of the landmark box area), source pixels."""
    max_reprojection_error_px: float = 10.0
    """Mean FLAME landmark reprojection error, image pixels (FLAME backends)."""
    min_audio_loudness_dbfs: float = -50.0
    max_silence_fraction: float = 0.8
    """Share of frames whose audio RMS is below -45 dBFS."""
    max_clipping_fraction: float = 0.01
    """Share of audio samples at full scale."""
    max_abs_av_offset_s: float = 0.08
    """Largest audio-visual offset tolerated (2 frames at 25 fps); beyond it lips and speech look
    out of sync. A clip is rejected only when its offset's whole interval lies beyond this and
    its sync peak is significant (``max_av_sync_p_value``): an unconfident estimate never rejects."""
    max_av_sync_p_value: float = 0.05
    """Significance level of the audio-visual peak: ``av_sync_p_value`` at or below this is a
    real peak. Above it, a clip with ``min_av_speech_s`` of speech and ``min_av_mouth_motion``
    is rejected as dubbed or unrelated audio."""
    min_av_speech_s: float = 20.0
    """Seconds of speech a clip needs before a missing peak counts against it: in-sync natural
    speech with weak lip motion shows a significant peak only from about this length on."""
    min_av_mouth_motion: float = 0.06
    """Mouth motion (``av_mouth_motion``: 5th-95th percentile range of the outer-lip opening, in
    inter-ocular distances) a clip needs before a missing peak counts against it; a face that
    does not speak (0.02-0.04) is kept, talking faces measure 0.08 and more."""
    av_max_lag_s: float = 0.5
    """How far the sync search shifts the audio each way, seconds (at most a third of the clip).
    An offset beyond it is not seen: the estimate then lands on a side peak, possibly a
    significant one. 1.0 catches the 0.5-1 s desyncs of badly muxed files, at the price of more
    side-peak estimates on clips of a few seconds (docs/qa.md)."""
    sync_model: Optional[str] = field(default=None, metadata=_ASSET)
    """SyncNet weights, VGG's ``syncnet_v2.model`` (``--sync-model PATH``; never shipped). When
    set, every clip is also scored by SyncNet (``lse_d``, ``lse_c``, ``syncnet_offset_frames``,
    as joonson/syncnet_python computes them) and the three SyncNet filters below apply. Needs
    PyTorch (``pip install 'pseudo3d[train]'``), ``decode.fps`` 25 and ``decode.sample_rate`` 16000
    (what SyncNet was trained on); runs on ``reconstruct.device``."""
    min_lse_c: float = 3.0
    """Smallest SyncNet confidence (LSE-C) kept; audio unrelated to the face scores near 0 to 2,
    in-sync talking heads about 6 to 9. Only with ``sync_model``."""
    max_lse_d: Optional[float] = None
    """Largest SyncNet distance (LSE-D) kept; off by default (null), as LSE-D depends on the crops
    more than LSE-C does (in-sync talking heads measure about 6 to 8). Only with ``sync_model``."""
    max_abs_syncnet_offset_frames: float = 2.0
    """Largest SyncNet offset tolerated, frames at 25 fps; judged only where SyncNet is confident
    (``lse_c`` at least ``min_lse_c``). Only with ``sync_model``."""
    sync_batch_size: int = field(default=64, metadata=_RUNTIME)
    """SyncNet windows (5 frames each) per forward pass; speed only, not content."""

    def __post_init__(self):
        require(0 <= self.min_confidence_mean <= 1, f"min_confidence_mean must be in [0, 1], got {self.min_confidence_mean}")
        require(0 <= self.max_interpolated_fraction <= 1,
               f"max_interpolated_fraction must be in [0, 1], got {self.max_interpolated_fraction}")
        require(self.min_face_size_px >= 0, f"min_face_size_px must be >= 0, got {self.min_face_size_px}")
        require(self.max_reprojection_error_px > 0, f"max_reprojection_error_px must be > 0, got {self.max_reprojection_error_px}")
        require(self.min_audio_loudness_dbfs <= 0, f"min_audio_loudness_dbfs must be <= 0, got {self.min_audio_loudness_dbfs}")
        for name in ("max_silence_fraction", "max_clipping_fraction"):
            require(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1], got {getattr(self, name)}")
        require(self.max_abs_av_offset_s > 0, f"max_abs_av_offset_s must be > 0 seconds, got {self.max_abs_av_offset_s}")
        require(0 < self.max_av_sync_p_value < 1, f"max_av_sync_p_value must be in (0, 1), got {self.max_av_sync_p_value}")
        require(self.min_av_speech_s >= 0, f"min_av_speech_s must be >= 0 seconds, got {self.min_av_speech_s}")
        require(self.min_av_mouth_motion >= 0, f"min_av_mouth_motion must be >= 0, got {self.min_av_mouth_motion}")
        require(0 < self.av_max_lag_s <= 5, f"av_max_lag_s must be in (0, 5] seconds, got {self.av_max_lag_s}")
        require(self.min_lse_c >= 0, f"min_lse_c must be >= 0, got {self.min_lse_c}")
        require(self.max_lse_d is None or self.max_lse_d > 0, f"max_lse_d must be > 0 (or null: off), got {self.max_lse_d}")
        require(0 <= self.max_abs_syncnet_offset_frames <= 15,
               f"max_abs_syncnet_offset_frames must be in [0, 15] frames, got {self.max_abs_syncnet_offset_frames}")
        require(self.sync_batch_size >= 1, f"sync_batch_size must be >= 1, got {self.sync_batch_size}")


@dataclass(frozen=True)
class ShardConfig:
    """Units, WebDataset shard sizes and optional members."""

    max_sources: int = 100
    """A unit, the consecutive inputs one worker builds, writes and commits together, holds at
    most this many sources; its clips go into one or more shards of its own. Smaller units spread
    a build over more workers and lose less work to a crash; larger ones make fewer shards."""
    max_unit_bytes: int = 10_000_000_000
    """A unit is closed before a source that would take its input files past this many bytes (a
    source larger than this is a unit of its own), so a unit of long videos is not a hundred of
    them: a crash loses at most about this much input's work (10 GB: some 10 hours of 720p
    talking heads). Sizes come from the listing that found the inputs; a URL in a list file has
    none and counts 0 (docs/data-contract.md, "Commit protocol")."""
    max_samples: int = 200
    """A shard is closed before it would hold more clips than this."""
    max_bytes: int = 1_000_000_000
    """A shard is closed before it would grow past this many bytes (a single source larger than
    this gets a shard of its own; sources are never split across shards)."""
    write_crops: bool = False
    """Also store the 224x224 face crops (``crops.npy``, uint8, about 150 kB per frame)."""

    def __post_init__(self):
        require(self.max_sources >= 1, f"max_sources must be >= 1, got {self.max_sources}")
        require(self.max_unit_bytes >= 1_000_000, f"max_unit_bytes must be >= 1000000, got {self.max_unit_bytes}")
        require(self.max_samples >= 1, f"max_samples must be >= 1, got {self.max_samples}")
        require(self.max_bytes >= 1_000_000, f"max_bytes must be >= 1000000, got {self.max_bytes}")


@dataclass(frozen=True)
class FitConfig:
    """The ``flame-fit`` optimisation (per clip, all frames at once, Adam)."""

    iterations: int = 400
    """Steps with every parameter free, after the rigid start."""
    rigid_iterations: int = 60
    """Steps that move only head rotation and camera, first."""
    learning_rate: float = 0.05
    """Adam's step size."""
    depth_weight: float = 0.1
    """Weight of MediaPipe's depth (less reliable than x, y) relative to the 2D landmark term."""
    shape_prior: float = 1e-6
    """Weights of the Gaussian priors, relative to the mean squared landmark error in the crop's
    normalised units (0.5 px of noise in a 224 crop is about 1e-5): weak by design."""
    expression_prior: float = 1e-6
    jaw_prior: float = 1e-5
    temporal: float = 1e-5
    """Weight of the second-difference penalty tying consecutive frames."""

    def __post_init__(self):
        require(self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}")
        require(self.rigid_iterations >= 0, f"rigid_iterations must be >= 0, got {self.rigid_iterations}")
        require(0 < self.learning_rate <= 1, f"learning_rate must be in (0, 1], got {self.learning_rate}")
        for name in ("depth_weight", "shape_prior", "expression_prior", "jaw_prior", "temporal"):
            require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")


PRECISIONS = ("fp32", "bf16")
"""The values of ``reconstruct.precision``."""
FLAME_PROFILES = ("standard", "tfhp")
"""The values of ``reconstruct.flame_profile`` (:mod:`pseudo3d.reconstruction.profile`)."""
FLAME_BACKENDS = ("deca", "spectre", "flame-fit")
"""The backends whose samples hold FLAME parameters."""
TFHP_FPS, TFHP_SAMPLE_RATE = 25.0, 16000
"""TFHP's frame rate and sample rate (640 samples a frame)."""
TFHP_EXPRESSION_WINDOW = (5, 2)
"""Savitzky–Golay (window frames, polynomial order) of TFHP's expression and jaw."""
TFHP_HEAD_WINDOW = (7, 2)
"""Savitzky–Golay (window frames, polynomial order) of TFHP's head pose."""


@dataclass(frozen=True)
class ReconstructConfig:
    """Assets and settings of the FLAME backends (``deca``, ``spectre``, ``flame-fit``). The
    ``mediapipe`` backend uses none of them."""

    flame_model: Optional[str] = field(default=None, metadata=_ASSET)
    """FLAME model pickle: FLAME 2020 ``generic_model.pkl`` or FLAME 2023 Open
    ``flame2023_Open.pkl`` (CC-BY-4.0). Needed by ``deca``, ``spectre`` and ``flame-fit``."""
    landmark_embedding: Optional[str] = field(default=None, metadata=_ASSET)
    """FLAME landmark embedding: MediaPipe layout (``mediapipe_landmark_embedding.npz``), needed by
    ``flame-fit`` and used by ``deca`` and ``spectre`` for the reprojection error; or DECA's 68-point
    ``landmark_embedding.npy``."""
    deca_checkpoint: Optional[str] = field(default=None, metadata=_ASSET)
    """DECA's ``deca_model.tar`` (only its coarse encoder ``E_flame`` is used). Needed by ``deca``."""
    spectre_checkpoint: Optional[str] = field(default=None, metadata={**_ASSET, **_ADDED})
    """SPECTRE's ``spectre_model.tar`` (its ``E_flame``, DECA's coarse encoder, and ``E_expression``).
    Needed by ``spectre``."""
    n_shape: int = 100
    """FLAME identity-shape components kept (FLAME files hold 300)."""
    n_expression: int = 50
    """FLAME expression components kept (FLAME files hold 100; DECA predicts 50)."""
    device: str = field(default="auto", metadata=_RUNTIME)
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    precision: str = field(default="fp32", metadata=_RUNTIME)
    """``deca`` and ``spectre`` on CUDA: ``fp32`` (IEEE float32, deterministic cuDNN algorithms: the reference's
    arithmetic, and the same bytes again on the same GPU model) or ``bf16`` (bfloat16 autocast:
    faster, not bit-reproducible; see docs/reconstruction.md for both figures). The CPU always
    runs fp32."""
    batch_size: int = field(default=256, metadata=_RUNTIME)
    """Frames per GPU batch; batches span clips and sources. Out of memory halves it for the rest
    of the build (down to one frame) before a clip is given up."""
    fit: FitConfig = field(default_factory=FitConfig)
    """``flame-fit`` optimisation settings."""
    flame_profile: str = field(default="standard", metadata=_ADDED)
    """``standard``, or ``tfhp``: also write DiffPoseTalk TFHP's arrays and smoothing
    (``tfhp_shape``, ``tfhp_exp``, ``tfhp_pose``; docs/reconstruction.md). FLAME backends only."""

    def __post_init__(self):
        require(1 <= self.n_shape <= 300, f"n_shape must be in [1, 300], got {self.n_shape}")
        require(1 <= self.n_expression <= 100, f"n_expression must be in [1, 100], got {self.n_expression}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(self.precision in PRECISIONS, f"precision must be {' or '.join(PRECISIONS)}, got {self.precision!r}")
        require(self.flame_profile in FLAME_PROFILES,
               f"flame_profile must be {' or '.join(FLAME_PROFILES)}, got {self.flame_profile!r}")
        require(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
               f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


# Which reconstruct options each backend needs, with the command-line flag that sets each.
BACKEND_NAMES = ("mediapipe", "deca", "spectre", "flame-fit")
"""The values of ``backend`` (:data:`pseudo3d.reconstruction.BACKENDS` holds what each one is)."""

_BACKEND_NEEDS = {
    "deca": (("flame_model", "--flame-model"), ("deca_checkpoint", "--deca-checkpoint")),
    "spectre": (("flame_model", "--flame-model"), ("spectre_checkpoint", "--spectre-checkpoint")),
    "flame-fit": (("flame_model", "--flame-model"), ("landmark_embedding", "--landmark-embedding")),
}


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the content of a dataset. Runner settings (workers, Ray address)
    are not part of it: they change how fast a dataset is built, never what is in it."""

    backend: str = "mediapipe"
    """Reconstruction backend: ``mediapipe`` (no licensed assets needed)."""
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    reconstruct: ReconstructConfig = field(default_factory=ReconstructConfig)
    qa: QAConfig = field(default_factory=QAConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)

    def __post_init__(self):
        require(self.backend in BACKEND_NAMES, f"backend must be one of {', '.join(BACKEND_NAMES)}; got {self.backend!r}")
        for option, flag in _BACKEND_NEEDS.get(self.backend, ()):
            require(getattr(self.reconstruct, option) is not None,
                   f"backend {self.backend} needs reconstruct.{option} ({flag} PATH)")
        if self.backend in ("deca", "spectre"):  # the encoders' fixed input and outputs
            require(self.track.crop_size == 224,
                   f"backend {self.backend} needs track.crop_size: 224 (its encoder's input); got {self.track.crop_size}")
            require((self.reconstruct.n_shape, self.reconstruct.n_expression) == (100, 50),
                   f"backend {self.backend} predicts 100 shape and 50 expression components; reconstruct.n_shape "
                   f"and reconstruct.n_expression must be 100 and 50, got {self.reconstruct.n_shape} and "
                   f"{self.reconstruct.n_expression}")
        if self.reconstruct.flame_profile == "tfhp":  # DiffPoseTalk's TFHP layout
            require(self.backend in FLAME_BACKENDS,
                   f"reconstruct.flame_profile tfhp needs a FLAME backend ({', '.join(FLAME_BACKENDS)}), got {self.backend}")
            require((self.decode.fps, self.decode.sample_rate) == (TFHP_FPS, TFHP_SAMPLE_RATE),
                   f"reconstruct.flame_profile tfhp needs decode.fps: 25 and decode.sample_rate: 16000, got "
                   f"{self.decode.fps:g} and {self.decode.sample_rate}")
            require((self.reconstruct.n_shape, self.reconstruct.n_expression) == (100, 50),
                   f"reconstruct.flame_profile tfhp needs reconstruct.n_shape 100 and n_expression 50, got "
                   f"{self.reconstruct.n_shape} and {self.reconstruct.n_expression}")
            require(self.track.min_clip_s * TFHP_FPS >= TFHP_HEAD_WINDOW[0],
                   f"reconstruct.flame_profile tfhp smooths head pose over {TFHP_HEAD_WINDOW[0]} frames: "
                   f"track.min_clip_s must be >= {TFHP_HEAD_WINDOW[0] / TFHP_FPS:g} s, got {self.track.min_clip_s:g}")
        if self.backend == "spectre":
            require(self.track.crop_scale == TrackConfig.crop_scale,
                   f"track.crop_scale is DECA's crop scale; backend spectre crops as SPECTRE was trained "
                   f"(1.6 x the 68-landmark box): leave track.crop_scale at {TrackConfig.crop_scale:g}, got "
                   f"{self.track.crop_scale:g}")
        require(self.decode.chunk_s >= self.track.max_clip_s,
               f"decode.chunk_s ({self.decode.chunk_s:g}) must be >= track.max_clip_s ({self.track.max_clip_s:g})")
        if 1.5 * self.decode.chunk_s <= self.limits.max_duration_s:  # sources may be cut: a chunk's clips fit its keys
            require(1.5 * self.decode.chunk_s / self.track.min_clip_s < CHUNK_CLIPS,
                   f"1.5 x decode.chunk_s / track.min_clip_s must be < {CHUNK_CLIPS} (the clips the longest chunk "
                   f"may hold); got 1.5 x {self.decode.chunk_s:g} / {self.track.min_clip_s:g}")
        if self.qa.sync_model is not None:  # SyncNet's windows are 5 frames at 25 fps over 16 kHz MFCCs
            require(self.decode.fps == 25.0, f"qa.sync_model (SyncNet) needs decode.fps: 25, got {self.decode.fps:g}")
            require(self.decode.sample_rate == 16000,
                   f"qa.sync_model (SyncNet) needs decode.sample_rate: 16000, got {self.decode.sample_rate}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def card_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` as the dataset card records it: each asset path reduced to the file's
        name and SHA-256 (``{"name": ..., "sha256": ...}``), so no machine path reaches a dataset."""
        return _card_view(self)

    def fingerprint(self) -> str:
        """A short hash of the content-deciding options (asset files by their SHA-256, runtime
        settings left out); a dataset refuses a resume under a different fingerprint."""
        text = json.dumps(_fingerprint_view(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BuildConfig":
        return dataclass_from_mapping(cls, data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "BuildConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--config: no such file: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config {path}: not valid YAML: {exc}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"--config {path}: expected a mapping of sections, got {type(data).__name__}")
        config = cls.from_dict(data)
        # Asset paths written in the file are relative to the file, not to where pseudo3d runs.
        overrides = {}
        for section in ("reconstruct", "qa"):
            options = getattr(config, section)
            assets = {spec.name: str((path.parent / value).resolve())
                      for spec in dataclasses.fields(options) if spec.metadata.get("asset")
                      for value in [getattr(options, spec.name)] if value and not Path(value).is_absolute()}
            if assets:
                overrides[section] = assets
        return config.with_overrides(**overrides) if overrides else config

    def with_overrides(self, **sections: Mapping[str, Any]) -> "BuildConfig":
        """A copy with some options replaced, e.g. ``with_overrides(decode={"fps": 30})``;
        top-level scalars are passed directly (``backend="mediapipe"``)."""
        merged = self.to_dict()
        for name, value in sections.items():
            if isinstance(value, Mapping):
                merged.setdefault(name, {}).update(value)
            else:
                merged[name] = value
        return BuildConfig.from_dict(merged)


def _fingerprint_view(config) -> dict[str, Any]:
    """What decides content: runtime options left out, each asset by its SHA-256."""
    return _view(config, lambda path, digest: digest, runtime=False)


def _card_view(config) -> dict[str, Any]:
    """Every option, each asset as its file name and SHA-256 (no machine path)."""
    return _view(config, lambda path, digest: {"name": Path(path).name, "sha256": digest}, runtime=True)


def _view(config, asset: Callable[[str, str], Any], *, runtime: bool) -> dict[str, Any]:
    view = {}
    for spec in dataclasses.fields(config):
        value = getattr(config, spec.name)
        if not runtime and spec.metadata.get("fingerprint") is False:
            continue
        if not runtime and spec.metadata.get("fingerprint_at_default") is False and value == spec.default:
            continue
        if dataclasses.is_dataclass(value):
            value = _view(value, asset, runtime=runtime)
        elif spec.metadata.get("asset") and value is not None:
            value = asset(value, _cached_sha256(str(Path(value).expanduser().resolve())))
        view[spec.name] = value
    return view


@functools.lru_cache(maxsize=32)
def _cached_sha256(path: str) -> str:
    if not Path(path).is_file():
        return f"missing:{path}"
    return file_sha256(path)
