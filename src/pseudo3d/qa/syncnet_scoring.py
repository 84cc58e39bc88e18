"""Everything SyncNet needs apart from the network: its face crops, its MFCCs, and the LSE figures.

SyncNet (Chung & Zisserman, "Out of time: automated lip sync in the wild", 2016) is scored here
exactly as its reference implementation, joonson/syncnet_python (MIT), does it; the network
itself is :class:`pseudo3d.qa.syncnet.SyncNet`. This module needs no PyTorch, so the tracking
stage can cut the crops on CPU workers.

**Crops** (``run_pipeline.py``, ``crop_video``). From a face box per frame, (x0, y0, x1, y1) in
image pixels, as S3FD gives it: half-size ``s = max(w, h) / 2`` and centre, each median-filtered
over 13 frames along the track (:func:`crop_windows`; this needs the whole track, and repeats the
end values where the reference pads with zeros); then each frame
is cut to ``[y - s, y + s·(1 + 2·cs)) × [x - s·(1 + cs), x + s·(1 + cs))`` with ``cs = 0.4``
(a square of side 2.8·s whose top edge is s above the face centre), the image padded with grey
110 where the window leaves it, and resized to 224 × 224 by ``cv2.resize`` (bilinear), in BGR
channel order (:func:`crop_for_syncnet`, one frame at a time). The reference writes the crops
to an XVID video and reads them back as JPEG frames; the crops here skip those two lossy steps.

**Boxes from MediaPipe landmarks** (:func:`landmark_face_boxes`). The reference detects faces
with S3FD; pseudo3d tracks MediaPipe's 478 landmarks instead. SyncNet was trained on crops made
to this specification (LRS; see joonson/syncnet_python#35), so the box derived from the
landmarks is calibrated to make the same crops: on 14 VoxCeleb2 face tracks (224 × 224 crops
that VGG cut the same way), the detector box that the crop formula implies (half-size 80 px,
centred 80 px below the top) is, to within a few pixels, a square of side 1.1 × the height of
MediaPipe's face oval (forehead to chin), its bottom edge on the chin and centred on the oval
horizontally. Faces pitched up or down look shorter, so the height used is the larger of the
oval's height and 1.2 × its width (height / width = 1.21, the median over those tracks).

**Audio** (``SyncNetInstance.evaluate``). 16 kHz mono as 16-bit PCM, the way ``ffmpeg
-acodec pcm_s16le`` writes it (:func:`audio_to_pcm16`), then ``python_speech_features.mfcc``
with its defaults: 13 coefficients (the first replaced by the log frame energy) of 25 ms frames
every 10 ms, i.e. 100 per second (:func:`syncnet_mfcc`).

**Scoring** (``evaluate`` and ``calc_pdist``). At 25 fps, window ``i`` is video frames
``i .. i+4`` and MFCC steps ``4i .. 4i+19`` (0.2 s each). For every window, the distance between
its lip embedding and the audio embeddings of windows ``i - vshift .. i + vshift`` (zero
vectors past either end, as the reference pads them); averaged over windows, that gives one
mean distance per offset. **LSE-D** is the smallest mean distance, **LSE-C** the median of the
mean distances minus that smallest one, and the offset is where the smallest one lies
(:func:`sync_figures`).

**Sign.** The reference reports ``vshift - argmin``: positive when the audio leads the picture.
pseudo3d reports ``syncnet_offset_frames = argmin - vshift``, **positive when the audio lags the
picture**, the convention of :mod:`pseudo3d.qa.sync`'s ``av_offset_frames``: the reference's
"AV offset" is the negative of ``syncnet_offset_frames``.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import cv2
import numpy as np

FPS = 25.0
"""Video frame rate SyncNet was trained on, frames per second."""
SAMPLE_RATE = 16000
"""Audio sample rate SyncNet's MFCCs expect, Hz."""
SAMPLES_PER_FRAME = 640
"""Audio samples per video frame (16000 / 25)."""
N_MFCC = 13
"""MFCC coefficients per step."""
MFCC_PER_FRAME = 4
"""MFCC steps (10 ms) per video frame (40 ms)."""
WINDOW_FRAMES = 5
"""Video frames in one SyncNet window (0.2 s)."""
WINDOW_MFCC = 20
"""MFCC steps in one SyncNet window (0.2 s)."""
CROP_SIZE = 224
"""Side of SyncNet's square input crops, pixels."""
CROP_SCALE = 0.4
"""The reference's ``--crop_scale``: how far the crop window reaches beyond the face box."""
BOX_MEDIAN_FRAMES = 13
"""Kernel of the median filter over the box size and centre along the track, frames."""
PAD_LEVEL = 110
"""Grey level of the padding where the crop window leaves the image."""
DEFAULT_VSHIFT = 15
"""Offsets searched each way, frames (``run_syncnet.py``'s default; ±0.6 s)."""

OVAL_TO_BOX = 1.1
"""Side of the S3FD-like box over the face-oval height (calibrated on VoxCeleb2 tracks)."""
OVAL_HEIGHT_OVER_WIDTH = 1.2
"""Face-oval height / width of an upright frontal face; 1.2 × the width stands in for the
height when the face is pitched and looks shorter."""


# --- Face crops --------------------------------------------------------------------------------

def landmark_face_boxes(landmarks: np.ndarray) -> np.ndarray:
    """S3FD-like face boxes (T, 4) float64 (x0, y0, x1, y1), pixels, from MediaPipe landmarks.

    ``landmarks``: (T, 478, 2+) in image pixels (extra columns such as z are ignored); a frame
    whose landmarks are NaN (face lost) gives a NaN row. Each box is a square of side
    1.1 × max(face-oval height, 1.2 × face-oval width), its bottom edge on the lowest oval point
    (the chin), centred on the oval horizontally: the box for which
    :func:`crop_windows` reproduces the framing of VGG's own crops (see the module docstring).
    """
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1] != 478 or landmarks.shape[2] < 2:
        raise ValueError(f"landmarks must have shape (T, 478, 2+), got {landmarks.shape}")
    oval = landmarks[:, _face_oval_indices(), :2]
    with warnings.catch_warnings():  # all-NaN frames give NaN boxes, as documented
        warnings.simplefilter("ignore", RuntimeWarning)
        left, top = np.nanmin(oval[..., 0], axis=1), np.nanmin(oval[..., 1], axis=1)
        right, bottom = np.nanmax(oval[..., 0], axis=1), np.nanmax(oval[..., 1], axis=1)
    extent = np.maximum(bottom - top, OVAL_HEIGHT_OVER_WIDTH * (right - left))
    half = OVAL_TO_BOX * extent / 2.0
    centre_x = (left + right) / 2.0
    return np.stack([centre_x - half, bottom - 2.0 * half, centre_x + half, bottom], axis=1)


def _face_oval_indices() -> np.ndarray:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    return np.array(sorted({index for edge in FACEMESH_FACE_OVAL for index in edge}), np.int64)


def crop_windows(boxes: np.ndarray, crop_scale: float = CROP_SCALE) -> np.ndarray:
    """Crop windows (T, 4) int64 (x0, y0, x1, y1), half-open, image pixels, for a face track.

    ``boxes``: (T, 4) face boxes (x0, y0, x1, y1) in image pixels, one per frame of the track,
    in order (from a detector, or :func:`landmark_face_boxes`). As the reference: half-size
    ``s = max(w, h) / 2``, centre x and y, each median-filtered over 13 frames; then rows
    ``floor(y - s) .. floor(y + s·(1 + 2·crop_scale))``
    and columns ``floor(x - s·(1 + crop_scale)) .. floor(x + s·(1 + crop_scale))``. The windows
    may reach outside the image (:func:`crop_for_syncnet` pads). One deliberate difference: the
    reference's median filter (``scipy.signal.medfilt``) pads the track with zeros, which biases
    its first and last 6 windows towards the image origin and empties tracks under 7 frames;
    here the end values are repeated instead, so those windows follow the face and every other
    window is the reference's to the pixel. Rows that are NaN (a frame
    without a box) are filled by linear interpolation along the track, as the reference does
    between detections. Raises ValueError for a bad shape, a negative ``crop_scale``, or a track
    with no box at all.
    """
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
        raise ValueError(f"boxes must have shape (T, 4) with T >= 1, got {boxes.shape}")
    if not crop_scale >= 0:
        raise ValueError(f"crop_scale must be >= 0, got {crop_scale}")
    boxes = _interpolate_missing(boxes)
    half = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    centre_y = (boxes[:, 1] + boxes[:, 3]) / 2
    centre_x = (boxes[:, 0] + boxes[:, 2]) / 2
    half, centre_y, centre_x = (_median_filter(values) for values in (half, centre_y, centre_x))
    # The reference pads by bsi = int(s·(1 + 2cs)) and slices the padded frame at int(...);
    # doing the same arithmetic and subtracting the pad gives its windows to the pixel.
    pad = np.floor(half * (1 + 2 * crop_scale))
    padded_y, padded_x = centre_y + pad, centre_x + pad
    windows = np.stack([
        np.floor(padded_x - half * (1 + crop_scale)),
        np.floor(padded_y - half),
        np.floor(padded_x + half * (1 + crop_scale)),
        np.floor(padded_y + half * (1 + 2 * crop_scale)),
    ], axis=1) - pad[:, None]
    return windows.astype(np.int64)


def _interpolate_missing(boxes: np.ndarray) -> np.ndarray:
    known = np.isfinite(boxes).all(axis=1)
    if not known.any():
        raise ValueError(f"none of the {len(boxes)} face boxes is finite")
    if known.all():
        return boxes
    frames = np.arange(len(boxes))
    return np.stack([np.interp(frames, frames[known], boxes[known, k]) for k in range(4)], axis=1)


def _median_filter(values: np.ndarray) -> np.ndarray:
    # The reference's scipy.signal.medfilt pads with zeros, which pulls the first and last six
    # boxes towards the image origin and collapses tracks under 7 frames to an empty window;
    # repeating the end values instead changes nothing else.
    from scipy.ndimage import median_filter

    return median_filter(values, size=BOX_MEDIAN_FRAMES, mode="nearest")


def crop_for_syncnet(frame_rgb: np.ndarray, window: Sequence[int] | np.ndarray) -> np.ndarray:
    """One frame's SyncNet crop: (224, 224, 3) uint8 **BGR**.

    ``frame_rgb``: (H, W, 3) uint8 RGB image; ``window``: one row of :func:`crop_windows`
    (x0, y0, x1, y1), half-open, pixels. The part of the window outside the image is grey 110;
    the window is resized to 224 × 224 with ``cv2.resize`` (bilinear). For a window whose face
    centre lies inside the image this is the reference's crop to the pixel (for a centre outside
    it, the reference's slicing wraps around or truncates; here the window is always padded).
    """
    if not isinstance(frame_rgb, np.ndarray) or frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 \
            or frame_rgb.shape[2] != 3:
        described = (f"{frame_rgb.dtype} array of shape {frame_rgb.shape}" if isinstance(frame_rgb, np.ndarray)
                     else type(frame_rgb).__name__)
        raise ValueError(f"frame_rgb must be a uint8 array of shape (H, W, 3), got a {described}")
    x0, y0, x1, y1 = (int(v) for v in window)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"crop window must have x1 > x0 and y1 > y0, got {(x0, y0, x1, y1)}")
    height, width = frame_rgb.shape[:2]
    inside = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
    if inside[:2] == (x0, y0) and inside[2:] == (x1, y1):
        face = frame_rgb[y0:y1, x0:x1]
    else:
        face = np.full((y1 - y0, x1 - x0, 3), PAD_LEVEL, np.uint8)
        if inside[2] > inside[0] and inside[3] > inside[1]:
            face[inside[1] - y0:inside[3] - y0, inside[0] - x0:inside[2] - x0] = \
                frame_rgb[inside[1]:inside[3], inside[0]:inside[2]]
    resized = cv2.resize(np.ascontiguousarray(face), (CROP_SIZE, CROP_SIZE))
    return np.ascontiguousarray(resized[:, :, ::-1])  # per-channel resize: the order can flip after


def crop_track(frames_rgb: np.ndarray | Sequence[np.ndarray], boxes: np.ndarray,
               crop_scale: float = CROP_SCALE) -> np.ndarray:
    """SyncNet crops (T, 224, 224, 3) uint8 BGR of a whole face track: :func:`crop_windows` of
    ``boxes`` (T, 4), then :func:`crop_for_syncnet` of each frame. ``frames_rgb``: (T, H, W, 3)
    uint8 RGB, or T such images (their sizes may differ)."""
    windows = crop_windows(boxes, crop_scale)
    if len(frames_rgb) != len(windows):
        raise ValueError(f"{len(frames_rgb)} frames but {len(windows)} face boxes")
    if len(windows) == 0:
        return np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    return np.stack([crop_for_syncnet(frame, window) for frame, window in zip(frames_rgb, windows)])


# --- Audio features ----------------------------------------------------------------------------

def audio_to_pcm16(audio: np.ndarray) -> np.ndarray:
    """(n,) float audio in [-1, 1] → (n,) int16 as FFmpeg converts float to ``pcm_s16le``:
    ``x · 32768`` rounded half to even, clipped to [-32768, 32767] (so 16-bit audio decoded to
    float, which FFmpeg does by dividing by 32768, comes back unchanged). Raises ValueError for
    a non-1-D array or non-finite samples."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono, shape (n,), got {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("audio has non-finite samples (NaN or inf)")
    return np.clip(np.rint(audio.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def syncnet_mfcc(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """MFCCs (13, M) float32 of (n,) float mono audio in [-1, 1] at 16 kHz, as the reference
    computes them: ``python_speech_features.mfcc`` (defaults: 25 ms frames every 10 ms, 26 mel
    bands, 512-point FFT, pre-emphasis 0.97, lifter 22, the first coefficient replaced by the
    log frame energy) of the 16-bit PCM samples (:func:`audio_to_pcm16`), transposed.
    ``M = 1 + ceil((n - 400) / 160)`` for n > 400 (about 100 per second); (13, 0) for no audio.
    Raises ValueError for another sample rate."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"SyncNet's MFCCs need {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
    pcm = audio_to_pcm16(audio)
    if pcm.size == 0:
        return np.zeros((N_MFCC, 0), np.float32)
    try:
        from python_speech_features import mfcc
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("SyncNet's MFCCs need python_speech_features; install it with: "
                          "pip install 'pseudo3d[train]'") from error
    return np.ascontiguousarray(mfcc(pcm, SAMPLE_RATE).T, dtype=np.float32)


# --- Windows and figures -----------------------------------------------------------------------

def n_sync_windows(n_frames: int, n_samples: int) -> int:
    """Windows the reference scores for a clip of ``n_frames`` 25 fps frames and ``n_samples``
    16 kHz samples: ``min(n_frames, n_samples // 640) - 5``, at least 0. (This leaves out the
    last window that would fit, as the reference does.)"""
    return max(0, min(int(n_frames), int(n_samples) // SAMPLES_PER_FRAME) - WINDOW_FRAMES)


def offset_distances(lip: np.ndarray, audio: np.ndarray, vshift: int = DEFAULT_VSHIFT) -> np.ndarray:
    """(N, 2·vshift + 1) float64: column ``j`` of row ``i`` is the distance between lip
    embedding ``i`` and audio embedding ``i + j - vshift``, a zero vector where that index is
    outside 0..N-1. Distances as ``torch.nn.functional.pairwise_distance`` computes them,
    ``‖a - b + 1e-6‖``. ``lip``, ``audio``: (N, D) embeddings of the same N windows."""
    lip = np.asarray(lip, np.float64)
    audio = np.asarray(audio, np.float64)
    if lip.ndim != 2 or lip.shape != audio.shape:
        raise ValueError(f"lip and audio embeddings must both be (N, D), got {lip.shape} and {audio.shape}")
    if vshift < 0:
        raise ValueError(f"vshift must be >= 0, got {vshift}")
    n = len(lip)
    padded = np.concatenate([np.zeros((vshift, lip.shape[1])), audio, np.zeros((vshift, lip.shape[1]))])
    distances = np.empty((n, 2 * vshift + 1))
    for shift in range(2 * vshift + 1):
        distances[:, shift] = np.linalg.norm(lip - padded[shift:shift + n] + 1e-6, axis=1)
    return distances


def sync_figures(distances: np.ndarray, vshift: int | None = None) -> dict[str, float]:
    """``lse_d``, ``lse_c`` and ``syncnet_offset_frames`` from :func:`offset_distances` (N, 2v+1).

    The mean over windows gives one distance per offset; ``lse_d`` is the smallest (lower is
    better synchronised), ``lse_c`` the median minus the smallest (higher is more confident),
    ``syncnet_offset_frames`` the offset of the smallest in frames, **positive when the audio
    lags the picture** (the negative of the reference's "AV offset"). All NaN for N = 0.
    ``vshift`` defaults to the one the columns imply.
    """
    distances = np.asarray(distances, np.float64)
    if distances.ndim != 2 or distances.shape[1] % 2 != 1:
        raise ValueError(f"distances must have shape (N, 2·vshift + 1), got {distances.shape}")
    vshift = distances.shape[1] // 2 if vshift is None else vshift
    if distances.shape[1] != 2 * vshift + 1:
        raise ValueError(f"distances have {distances.shape[1]} offsets, not 2·{vshift} + 1")
    if len(distances) == 0:
        return {"lse_d": math.nan, "lse_c": math.nan, "syncnet_offset_frames": math.nan}
    mean = distances.mean(axis=0)
    best = int(np.argmin(mean))
    return {"lse_d": float(mean[best]), "lse_c": float(np.median(mean) - mean[best]),
            "syncnet_offset_frames": float(best - vshift)}
