"""Typed records passed between stages.

A runner moves these between stages (and, for the process pool or a cluster, between processes),
so they hold plain numpy arrays and JSON-able metadata only.

Coordinate conventions used throughout:

* image pixels: x to the right, y down, origin at the top-left corner of the (rotation-corrected)
  source frame, in source-resolution pixels;
* MediaPipe depth ``z``: same pixel scale as x, larger is further from the camera;
* time: seconds from the first video frame of the source; frame ``k`` of the output timeline is
  at ``k / fps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping

import numpy as np

from pseudo3d.schemas.failures import failure_kind

SourceStatus = Literal["ok", "failed"]


@dataclass(frozen=True)
class Chunk:
    """Which part of a long source a piece of work covers (``decode.chunk_s``): output frames
    ``[start_frame, stop_frame)``, the last chunk running on to the end of the video."""

    index: int
    count: int
    """The source's chunks: ``ceil(duration / decode.chunk_s)``."""
    start_frame: int
    stop_frame: int | None
    """None for the last chunk: to the end of the video."""
    fps: float
    """The output frame rate the frames count at (``decode.fps``)."""

    @property
    def last(self) -> bool:
        return self.index == self.count - 1

    def length_s(self, duration_s: float) -> float:
        """Seconds of video in this chunk of a source ``duration_s`` long."""
        stop_s = duration_s if self.stop_frame is None else min(duration_s, self.stop_frame / self.fps)
        return stop_s - self.start_frame / self.fps

    @property
    def span(self) -> str:
        """The chunk's time span as a failure row's ``clip`` column has it: ``600.00-1200.00s``
        (``1200.00s-end`` for the last)."""
        if self.stop_frame is None:
            return f"{self.start_frame / self.fps:.2f}s-end"
        return f"{self.start_frame / self.fps:.2f}-{self.stop_frame / self.fps:.2f}s"


@dataclass(frozen=True)
class Source:
    """One input video, or one chunk of a long one (``chunk``)."""

    uri: str
    """Absolute local path or fsspec URL: where this machine reads it. Never written to a dataset."""
    identity: str
    """What the source id is derived from: the path relative to the input root it was found
    under (directory or glob), the path as written in a list file, or an explicit ``id``."""
    source_id: str
    """Stable id, a prefix of every sample key of this source (no dots, no slashes)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Extra columns from a list file (speaker, licence, ...), carried into the manifest."""
    attempt: int = 1
    """1 for a source's first build; a ``--retry-failed`` build of a failed source counts on. The
    dataset files keep each source's row of its highest attempt."""
    reference: str = ""
    """What datasets record as the source (``source`` columns and members): the URL of a remote
    input; for a local file its path relative to its input root prefixed by the root's name, or
    relative to its list file; never a local absolute path, so the same corpus at two paths gives
    the same bytes. Empty: the identity."""
    size_bytes: int | None = None
    """The input file's size when the inputs were listed, in bytes (None where the listing did not
    give it: a URL in a list file). Only cuts units (``shards.max_unit_bytes``); never written to
    a dataset."""

    chunk: Chunk | None = None
    """Set on the pieces a long source is built in (``decode.chunk_s``); None for a source built
    whole. The chunks of a source share its id; their clips' keys carry the chunk."""

    def __post_init__(self):
        if not self.reference:
            object.__setattr__(self, "reference", self.identity)

    @property
    def completes(self) -> bool:
        """Whether this piece of work finishes its source: a whole source, or its last chunk."""
        return self.chunk is None or self.chunk.last

    @property
    def whole(self) -> "Source":
        """The source this piece belongs to (itself when it is whole)."""
        return self if self.chunk is None else replace(self, chunk=None)


@dataclass(frozen=True)
class ProbeInfo:
    """What PyAV reports about a source before decoding."""

    container: str
    size_bytes: int
    duration_s: float
    video_codec: str
    width: int
    """Displayed width in pixels (after rotation)."""
    height: int
    fps: float
    """Average frame rate of the video stream."""
    rotation: int
    """Display rotation in degrees (0, 90, 180, 270) applied to decoded frames."""
    n_video_streams: int
    n_audio_streams: int
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    video_start_s: float = 0.0
    """Presentation time of the first video frame; time zero of the output timeline."""
    first_frame_s: float | None = None
    """The time the decoder gives the first video frame, seconds: ``video_start_s`` except for AVI
    with B-frames (:func:`~pseudo3d.pipelines.decode.first_frame_time`); a chunk's decoder counts
    frame times from it. None where not probed."""
    video_duration_s: float | None = None
    """Length of the video stream as its header declares it, seconds (None when it does not);
    a decode that ends well before it is reported as ``decode/truncated``."""

    @property
    def has_audio(self) -> bool:
        return self.n_audio_streams > 0


@dataclass(frozen=True)
class Thumbnail:
    """A small JPEG of a clip's face for the QA report's gallery (``thumbnail.jpg``)."""

    frame: int
    """The clip frame it shows (0-based)."""
    jpeg: bytes
    box: tuple[int, int, int, int]
    """(x0, y0, x1, y1): the part of the source frame it shows, source display pixels; the image
    is that box scaled to at most 256 pixels on its longer side."""


@dataclass
class Clip:
    """One continuous face track of one source, on the output frame grid, with its audio.

    ``T`` below is ``n_frames``; 478 is MediaPipe's landmark count with irises.
    """

    source: Source
    clip_index: int
    start_frame: int
    """Index of the clip's first frame on the source's output timeline (at ``fps``)."""
    fps: float
    image_size: tuple[int, int]
    """(width, height) of the source frames in pixels."""
    landmarks: np.ndarray
    """(T, 478, 3) float32 MediaPipe landmarks in image pixels (x, y) and pixel-scaled depth z."""
    confidence: np.ndarray
    """(T,) float32 face detector score per frame, 0 where the detector found no face."""
    interpolated: np.ndarray
    """(T,) bool, true where the tracker lost the face and landmarks were interpolated."""
    crop_transforms: np.ndarray
    """(T, 2, 3) float32 similarity transforms mapping image pixels to crop pixels."""
    audio: np.ndarray
    """(n_samples,) float32 mono audio in [-1, 1] spanning exactly the clip."""
    sample_rate: int
    crops: np.ndarray | None = None
    """(T, S, S, 3) uint8 RGB face crops, present when a backend or the output asks for them."""
    sync_crops: np.ndarray | None = None
    """(T, 224, 224, 3) uint8 **BGR** SyncNet crops (:mod:`pseudo3d.qa.syncnet_scoring`), present
    when ``qa.sync_model`` is set; used for QA only, never written."""
    has_audio: bool = True
    """Whether the source has an audio stream (without one, ``audio`` is silence)."""
    thumbnail: Thumbnail | None = None
    """The face near the clip's middle, for the QA report (None when no candidate fell inside)."""

    @property
    def n_frames(self) -> int:
        return int(self.landmarks.shape[0])

    @property
    def start_s(self) -> float:
        return self.start_frame / self.fps

    @property
    def end_s(self) -> float:
        return (self.start_frame + self.n_frames) / self.fps

    @property
    def key(self) -> str:
        return clip_key(self.source.source_id, self.clip_index, self.source.chunk)


@dataclass
class ClipResult:
    """A reconstructed clip: its per-frame arrays (raw and smoothed) and per-clip metadata."""

    clip: Clip
    arrays: dict[str, np.ndarray]
    """Per-frame arrays; the first axis of each is the frame axis (length ``n_frames``)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Backend name, asset hashes, smoothing settings, ... (JSON-able)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Per-clip QA metrics, carried into the manifest."""


@dataclass(frozen=True)
class Failure:
    """One failure row: which input, which stage, why."""

    source_id: str
    source: str
    """The source's portable reference (:attr:`Source.reference`)."""
    stage: str
    error: str
    message: str
    clip: str | None = None
    """The clip concerned (a key, or a time span for a clip that was never kept), if any."""
    duration_s: float | None = None
    """Length of the clip concerned, seconds (for the QA funnel's hours)."""
    rejections: tuple[dict[str, Any], ...] = ()
    """For a ``qa`` row: every filter rule the clip broke, in rule order, each ``{"metric",
    "value", "option", "threshold"}`` (the metric as measured, the ``qa.*`` option and its
    value); empty for other rows."""

    @property
    def kind(self) -> str:
        """``permanent`` or ``transient`` (:mod:`pseudo3d.schemas.failures`); an unregistered
        code (a bug, which a test looks for) counts as permanent rather than stop a build."""
        try:
            return failure_kind(self.stage, self.error)
        except KeyError:
            return "permanent"

    @classmethod
    def of(cls, source: Source, stage: str, error: str, message: str, clip: str | None = None,
           duration_s: float | None = None, rejections: tuple[dict[str, Any], ...] = ()) -> "Failure":
        """The row of ``source``; its local path in ``message`` becomes its portable reference.
        A row of a chunk of a long source that names no clip names the chunk's span."""
        if clip is None and source.chunk is not None:
            clip = source.chunk.span
        return cls(source.source_id, source.reference, stage, error, message.replace(source.uri, source.reference),
                   clip=clip, duration_s=duration_s, rejections=rejections)

    def to_row(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "source": self.source, "clip": self.clip, "stage": self.stage,
                "error": self.error, "kind": self.kind, "message": self.message, "duration_s": self.duration_s,
                "rejections": [dict(rejection) for rejection in self.rejections]}


@dataclass
class EncodedSample:
    """A clip ready for a shard: member name suffix → bytes, plus its manifest row."""

    key: str
    members: Mapping[str, bytes]
    """E.g. ``{"audio.flac": ..., "meta.json": ..., "mesh_raw.npy": ...}``: a dict, or members
    read from a spool file when asked for (:mod:`pseudo3d.pipelines.spool`)."""
    row: dict[str, Any]

    @property
    def n_bytes(self) -> int:
        known = getattr(self.members, "n_bytes", None)  # a spool knows its sizes without reading
        return known if known is not None else sum(len(data) for data in self.members.values())


@dataclass
class SourceOutcome:
    """Everything one source produced: its samples (possibly none) and failure rows."""

    source: Source
    status: SourceStatus
    samples: list[EncodedSample] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    probe: ProbeInfo | None = None
    reason: str = ""
    """Why the source failed (empty when ok)."""
    n_frames_decoded: int = 0
    """Output-grid frames decoded (for throughput figures)."""
    assets: dict[str, str] = field(default_factory=dict)
    """Asset name → hash or version of what the backend used (recorded in the card)."""
    numerics: dict[str, dict[str, str]] = field(default_factory=dict)
    """Model (``reconstruct``, ``syncnet``) → where and in what precision it computed (device,
    precision, PyTorch/CUDA/cuDNN versions); empty for a source that failed before reconstruction."""

    @property
    def transient(self) -> bool:
        """Failed, with a transient failure among its rows (a retry may succeed)."""
        return self.status == "failed" and any(failure.kind == "transient" for failure in self.failures)

    def source_row(self) -> dict[str, Any]:
        probe = self.probe
        return {
            "source_id": self.source.source_id,
            "attempt": self.source.attempt,
            "source": self.source.reference,
            "identity": self.source.identity,
            "status": self.status,
            "reason": self.reason,
            "n_clips": len(self.samples),
            "n_failures": len(self.failures),
            "duration_s": probe.duration_s if probe else None,
            "fps": probe.fps if probe else None,
            "width": probe.width if probe else None,
            "height": probe.height if probe else None,
            "has_audio": probe.has_audio if probe else None,
            "container": probe.container if probe else None,
            "video_codec": probe.video_codec if probe else None,
            "size_bytes": probe.size_bytes if probe else None,
            "clip_seconds": float(sum(s.row["duration_s"] for s in self.samples)),
        }


CHUNK_CLIPS = 10_000
"""Clips one chunk of a long source may hold (``decode.chunk_s`` / ``track.min_clip_s`` is
checked against it): chunk ``c``'s clip ``i`` is the source's clip ``c * 10000 + i``."""


def clip_key(source_id: str, clip_index: int, chunk: Chunk | None = None) -> str:
    """The WebDataset ``__key__`` of a clip: stable across runs, no dots (WebDataset splits a
    member name at its first dot). ``SOURCEID_007`` for a source built whole; for a source
    built in chunks the index counts :data:`CHUNK_CLIPS` per chunk and has eight digits
    (``SOURCEID_00020005``: chunk 2, clip 5), so the keys sort in time order."""
    if chunk is None:
        return f"{source_id}_{clip_index:03d}"
    return f"{source_id}_{clip_index:08d}"


def clip_label(key: str) -> str:
    """How people read a clip's key: ``clip 7`` (``SOURCEID_007``), or ``chunk 2 · clip 5`` for a
    source built in chunks (``SOURCEID_00020005``; see :func:`clip_key`)."""
    index = key.rsplit("_", 1)[-1]
    if len(index) == 8 and index.isdigit():
        chunk, clip = divmod(int(index), CHUNK_CLIPS)
        return f"chunk {chunk} · clip {clip}"
    return f"clip {int(index)}" if index.isdigit() else key
