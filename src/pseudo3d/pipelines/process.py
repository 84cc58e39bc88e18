"""The per-source stage chain: probe → decode+track → reconstruct → smooth → qa → encode.

Called whole (:meth:`SourcePipeline.__call__`), it runs every stage clip by clip, each clip as
soon as its face track ends. It also comes in three steps so a runner can place them:
:meth:`SourcePipeline.track` (CPU: probe, decode, track, crops), :meth:`SourcePipeline.reconstruct`
(batched over the clips of several sources, on a GPU when there is one) and
:meth:`SourcePipeline.finish` (smooth, measure, encode). Both ways give the same outcome. Every
failure becomes data (a :class:`Failure` row); nothing raises out.
"""

from __future__ import annotations

import errno
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

import numpy as np

from pseudo3d.config import FLAME_BACKENDS, BuildConfig, DecodeConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.crops import crop_meta
from pseudo3d.pipelines.encode import encode_clip
from pseudo3d.pipelines.probe import Prober
from pseudo3d.pipelines.smooth import Smooth
from pseudo3d.pipelines.spool import SampleSpool
from pseudo3d.pipelines.track import DecodeTrack, TrackedSource
from pseudo3d.qa.audio import frame_envelope
from pseudo3d.qa.filters import check_clip
from pseudo3d.qa.metrics import clip_metrics
from pseudo3d.qa.sync import mouth_opening
from pseudo3d.reconstruction import BACKENDS, make_backend
from pseudo3d.reconstruction.base import SmoothingKind
from pseudo3d.reconstruction.profile import flame_description, tfhp_arrays
from pseudo3d.schemas.records import Chunk, Clip, ClipResult, EncodedSample, Failure, ProbeInfo, Source, SourceOutcome

if TYPE_CHECKING:  # torch loads only with a SyncNet model
    from pseudo3d.qa.syncnet import SyncNet

log = logging.getLogger(__name__)

T = TypeVar("T")

TRACKING_SMOOTHED: dict[str, SmoothingKind] = {"landmarks_2d": "linear"}
"""Tracking outputs every backend's samples carry, raw and smoothed, beside the backend's own."""


@dataclass(frozen=True)
class Chunked:
    """What building a source of 1.5 × ``decode.chunk_s`` or longer gives instead of its outcome: the
    pieces to build in its place, one per chunk, in order (a runner's pool runs them as tasks of
    their own: :class:`~pseudo3d.pipelines.runners.isolation.IsolatedPool`'s ``expand``)."""

    pieces: tuple[Source, ...]


def chunk_pieces(source: Source, probe: ProbeInfo, decode: DecodeConfig) -> Chunked | None:
    """``source`` cut into ``round(duration / decode.chunk_s)`` chunks of ``decode.chunk_s``
    (output frames ``[k F, (k + 1) F)``), the last running on to the end of the video (0.5 to 1.5
    chunks long, so no chunk is a sliver), when its declared duration is at least 1.5 chunks;
    None otherwise, and for a piece that already is a chunk."""
    count = round(probe.duration_s / decode.chunk_s) if math.isfinite(probe.duration_s) else 0
    if source.chunk is not None or count < 2:
        return None
    frames = round(decode.chunk_s * decode.fps)
    return Chunked(tuple(replace(source, chunk=Chunk(index, count, index * frames,
                                                     None if index == count - 1 else (index + 1) * frames, decode.fps))
                         for index in range(count)))


@dataclass
class InFlight:
    """A source between stages: its outcome so far, its clips and their reconstructions."""

    outcome: SourceOutcome
    clips: list[Clip] = field(default_factory=list)
    outputs: list[dict[str, np.ndarray] | None] = field(default_factory=list)
    clip_rows: list[Failure] = field(default_factory=list)
    """Rows of clips that failed reconstruction (they join the outcome's rows after tracking's)."""

    @property
    def n_clip_frames(self) -> int:
        return sum(clip.n_frames for clip in self.clips)


class SourcePipeline:
    """The stages one process needs; models load once, when the pipeline is built.

    ``track=False`` builds only reconstruction and what follows (the GPU side of a split
    pipeline); ``reconstruct=False`` only probing and tracking (the CPU workers' side).
    """

    def __init__(self, config: BuildConfig, *, track: bool = True, reconstruct: bool = True):
        self.config = config
        spec = BACKENDS[config.backend]
        self.backend = make_backend(config) if reconstruct else None
        if self.backend is not None:
            self.backend.on_progress = self._progress
        self.prober = Prober(config.decode, config.limits) if track else None
        self.decode_track = DecodeTrack(config.decode, config.track,
                                        want_crops=spec.needs_crops or config.shards.write_crops,
                                        want_sync_crops=config.qa.sync_model is not None,
                                        max_duration_s=config.limits.max_duration_s, progress=self._progress,
                                        crop=spec.crop) if track else None
        self.syncnet = _load_syncnet(config) if reconstruct else None
        self.smooth = (Smooth(config.smoothing, {**TRACKING_SMOOTHED, **self.backend.smoothed})
                       if self.backend is not None else None)  # (None exactly when not reconstruct)
        self.on_probe: Callable[[float], None] | None = None
        """Called after a source is probed with the seconds of video to build (a chunk's, for a
        chunk; the local runner sets the watchdog's deadline from it)."""
        self.spool_dir: Path | None = None
        """Where :meth:`__call__` spools each source's encoded samples as it makes them
        (:mod:`pseudo3d.pipelines.spool`); None keeps them in memory."""
        self.on_progress: Callable[[], None] | None = None
        """Called as the work on a source gets on: every decoded frame, every finished clip (the
        local runner's stall watch)."""

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress()

    def __call__(self, source: Source) -> SourceOutcome | Chunked:
        """Every stage in this process, clip by clip: each clip is reconstructed, smoothed,
        measured and encoded as soon as its face track ends, so only one clip's frames are held
        at a time (the encoded samples gather in the outcome). A source of 1.5 ×
        ``decode.chunk_s`` or longer gives its chunks to build instead (:class:`Chunked`)."""
        outcome = SourceOutcome(source=source, status="failed")
        clip_rows: list[Failure] = []
        spool = SampleSpool(self.spool_dir, source.source_id) if self.spool_dir is not None else None
        keep = outcome.samples.append if spool is None else lambda sample: outcome.samples.append(spool.add(sample))
        stage = "probe"
        try:
            tracked = self._tracked(outcome)
            if isinstance(tracked, Chunked):
                return tracked
            stage = "track"
            n_clips = 0
            for clip in tracked:
                n_clips += 1
                (result,) = self.reconstruct_clips([clip])
                if isinstance(result, Exception):
                    self._fail_clip(clip_rows, clip, "reconstruct", result)
                else:
                    self._finish_clip(keep, clip_rows, clip, result)
                self._progress()
            self._tracking_done(outcome, tracked, n_clips)
        except Exception as exc:  # StageError, or a bug / unforeseen input: never stops the build
            outcome.samples.clear()
            if spool is not None:
                spool.discard()
            fail_source(outcome, stage, exc)
            return outcome
        finally:
            if spool is not None:
                spool.close()
        outcome.failures.extend(clip_rows)
        return self._decide(outcome)

    def track(self, source: Source) -> InFlight | Chunked:
        """Probe, decode and track ``source``: its clips for :meth:`reconstruct` and :meth:`finish`
        (which may run in another process). All of the source's clips are held, so a source of
        1.5 × ``decode.chunk_s`` or longer gives its chunks to track instead (:class:`Chunked`)."""
        item = InFlight(SourceOutcome(source=source, status="failed"))
        stage = "probe"
        try:
            tracked = self._tracked(item.outcome)
            if isinstance(tracked, Chunked):
                return tracked
            stage = "track"
            item.clips = list(tracked)
            self._tracking_done(item.outcome, tracked, len(item.clips))
        except Exception as exc:  # StageError, or a bug / unforeseen input: never stops the build
            item.clips = []
            fail_source(item.outcome, stage, exc)
        return item

    def _tracked(self, outcome: SourceOutcome) -> TrackedSource | Chunked:
        source = outcome.source
        probe = outcome.probe = _part(self.prober, "track")(source)
        chunked = chunk_pieces(source, probe, self.config.decode)
        if chunked is not None:
            return chunked
        if self.on_probe is not None:
            self.on_probe(probe.duration_s if source.chunk is None else source.chunk.length_s(probe.duration_s))
        return _part(self.decode_track, "track")(source, probe)

    def _tracking_done(self, outcome: SourceOutcome, tracked: TrackedSource, n_clips: int) -> None:
        outcome.n_frames_decoded = tracked.n_frames
        outcome.failures.extend(tracked.failures)
        if not n_clips:
            short = sum(f.error == "clip_too_short" for f in tracked.failures)
            raise StageError("track", "no_usable_clip",
                             f"{short} face track(s) found, none at least "
                             f"track.min_clip_s={self.config.track.min_clip_s:g} s long")

    def reconstruct(self, items: list[InFlight]) -> None:
        """Reconstruct the clips of ``items`` in one batch; a clip that fails gets a row and its
        batch-mates are kept (see :meth:`reconstruct_clips`)."""
        clips = [clip for item in items for clip in item.clips]
        if not clips:
            return
        results = self.reconstruct_clips(clips)
        position = 0
        for item in items:
            item.outputs = []
            for clip in item.clips:
                result = results[position]
                position += 1
                if isinstance(result, Exception):
                    self._fail_clip(item.clip_rows, clip, "reconstruct", result)
                    item.outputs.append(None)
                else:
                    item.outputs.append(result)

    def reconstruct_clips(self, clips: list[Clip]) -> list[dict[str, np.ndarray] | Exception]:
        """One entry per clip: its arrays or what failed it. When the batch raises, out of memory
        halves the backend's frame batch (down to one frame) and tries again; any other exception
        splits the clips in two halves tried apart, until the clip that raised stands alone."""
        try:
            return list(_part(self.backend, "reconstruct").reconstruct_batch(clips))
        except Exception as exc:  # noqa: BLE001 - isolated below, then recorded per clip
            frames = getattr(self.backend, "batch_size", 1)  # a batched backend's frames per batch
            if is_out_of_memory(exc) and frames > 1:
                release_memory()
                setattr(self.backend, "batch_size", frames // 2)  # not an attribute of every Reconstructor
                log.warning("out of memory reconstructing %d frames at once (%s); batches of %d frames from now on",
                            frames, type(exc).__name__, frames // 2)
                return self.reconstruct_clips(clips)
            if len(clips) == 1:
                return [exc]
            half = len(clips) // 2
            return self.reconstruct_clips(clips[:half]) + self.reconstruct_clips(clips[half:])

    def finish(self, item: InFlight) -> SourceOutcome:
        """Smooth, measure, filter and encode each reconstructed clip (a clip that raises gets its
        row, in the stage that raised, and its siblings are kept); decide the source's status."""
        outcome = item.outcome
        if outcome.reason:  # failed before reconstruction
            return outcome
        clip_rows = item.clip_rows
        for clip, arrays in zip(item.clips, item.outputs):
            if arrays is not None:
                self._finish_clip(outcome.samples.append, clip_rows, clip, arrays)
            self._progress()
        order: dict[str | None, int] = {clip.key: position for position, clip in enumerate(item.clips)}  # by row.clip
        outcome.failures.extend(sorted(clip_rows, key=lambda row: order[row.clip]))  # in clip order, as __call__ has them
        return self._decide(outcome)

    def _decide(self, outcome: SourceOutcome) -> SourceOutcome:
        """The status of a source whose clips are all done: ``ok`` with at least one sample."""
        outcome.assets = self.asset_hashes()
        outcome.numerics = self.numerics()
        if outcome.samples:
            outcome.status = "ok"
        else:
            codes = sorted({f"{failure.stage}/{failure.error}" for failure in outcome.failures if failure.clip is not None
                            and failure.stage not in ("decode", "track")})
            if all(code.startswith("qa/") for code in codes):
                outcome.reason = "qa: every clip was filtered out (see its failure rows)"
            else:
                outcome.reason = f"every clip failed: {', '.join(codes)} (see the failure rows)"
        return outcome

    def _finish_clip(self, keep: Callable[[EncodedSample], None], rows: list[Failure], clip: Clip,
                     arrays: dict[str, np.ndarray]) -> None:
        stage = "smooth"
        try:
            smoothed = self.smooth_clip(clip, arrays)
            stage = "qa"
            metrics = self.measure_clip(clip, smoothed)
            rejections = check_clip(metrics, self.config.qa, clip.has_audio)
            if rejections:
                rows.append(Failure.of(
                    clip.source, "qa", rejections[0].metric, "; ".join(rejection.describe() for rejection in rejections),
                    clip=clip.key, duration_s=clip.n_frames / clip.fps,
                    rejections=tuple(rejection.as_row() for rejection in rejections)))
                return
            stage = "encode"
            keep(encode_clip(ClipResult(clip=clip, arrays=smoothed, meta=self.clip_meta(clip), metrics=metrics)))
        except Exception as exc:  # noqa: BLE001 - this clip's row; its siblings go on
            self._fail_clip(rows, clip, stage, exc)

    @staticmethod
    def _fail_clip(rows: list[Failure], clip: Clip, stage: str, exc: Exception) -> None:
        error = as_stage_error(exc, stage)
        if not isinstance(exc, StageError):
            log.error("unexpected error in stage %s for clip %s of %s", stage, clip.key, clip.source.uri, exc_info=exc)
        rows.append(Failure.of(clip.source, error.stage, error.error, error.message, clip=clip.key,
                               duration_s=clip.n_frames / clip.fps))

    def smooth_clip(self, clip: Clip, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The arrays of a sample: the tracking and the backend's outputs, raw and smoothed, and
        the per-frame tracking and QA arrays."""
        smooth = _part(self.smooth, "reconstruct")
        arrays = smooth({"landmarks_2d": clip.landmarks[..., :2].astype(np.float32), **outputs}, clip.fps)
        arrays["confidence"] = clip.confidence.astype(np.float32)
        arrays["interpolated"] = clip.interpolated.astype(bool)
        arrays["crop_transform"] = clip.crop_transforms.astype(np.float32)
        arrays["mouth_open"] = mouth_opening(clip.landmarks)
        arrays["audio_envelope"] = frame_envelope(clip.audio, clip.sample_rate, clip.fps, clip.n_frames)
        if self.config.shards.write_crops and clip.crops is not None:
            arrays["crops"] = clip.crops
        if self.config.reconstruct.flame_profile == "tfhp":  # clips of >= 7 frames: BuildConfig checks min_clip_s
            arrays.update(tfhp_arrays(outputs))
        return arrays

    def clip_meta(self, clip: Clip) -> dict:
        backend = _part(self.backend, "reconstruct")
        return {
            "backend": backend.name,
            "assets": self.asset_hashes(),
            "smoothing": _part(self.smooth, "reconstruct").describe(clip.fps),
            "crop": crop_meta(self.config.track, BACKENDS[self.config.backend].crop),
            "per_clip_arrays": sorted(backend.per_clip),
            "has_audio": clip.has_audio,
            **({"flame": flame_description(self.config, self.asset_hashes())}
               if self.config.backend in FLAME_BACKENDS else {}),
        }

    def measure_clip(self, clip: Clip, arrays: dict[str, np.ndarray]) -> dict[str, float]:
        """The clip's QA metrics (manifest columns), SyncNet's with ``qa.sync_model``, each
        rounded to float32's precision (about 7 significant digits): the last bits of float64
        trigonometry differ between processes of one machine (seen in Ray's workers), and a
        manifest must not."""
        metrics = clip_metrics(clip, arrays, self.config.qa.av_max_lag_s)
        if self.syncnet is not None:
            metrics.update(self._syncnet_metrics(self.syncnet, clip))
        return {name: float(np.float32(value)) for name, value in metrics.items()}

    def asset_hashes(self) -> dict[str, str]:
        """Asset name → SHA-256 of every user file the samples depend on: the backend's, and
        SyncNet's weights when QA scores with them."""
        return {**_part(self.backend, "reconstruct").asset_hashes(),
                **(self.syncnet.asset_hashes if self.syncnet is not None else {})}

    def numerics(self) -> dict[str, dict[str, str]]:
        """Model → where and in what precision it computes (shard stats and the card)."""
        found = {"reconstruct": _part(self.backend, "reconstruct").numerics()}
        if self.syncnet is not None:
            from pseudo3d.reconstruction.device import numerics

            found["syncnet"] = numerics(next(self.syncnet.parameters()).device, "fp32")
        return found

    def _syncnet_metrics(self, syncnet: SyncNet, clip: Clip) -> dict[str, float]:
        """``lse_d``, ``lse_c`` and ``syncnet_offset_frames`` of one clip (NaN without audio)."""
        from pseudo3d.qa.syncnet import SYNCNET_METRICS, syncnet_scores

        if not clip.has_audio or clip.sync_crops is None:
            return dict.fromkeys(SYNCNET_METRICS, float("nan"))
        return syncnet_scores(syncnet, clip.sync_crops, clip.audio, batch_size=self.config.qa.sync_batch_size,
                              sample_rate=clip.sample_rate, fps=clip.fps, progress=self._progress)


def uses_torch(config: BuildConfig) -> bool:
    """Whether the reconstruct side runs PyTorch models, and so can use a GPU: a GPU-capable
    backend, or SyncNet scoring in QA (``qa.sync_model``)."""
    return BACKENDS[config.backend].gpu_capable or config.qa.sync_model is not None


def _load_syncnet(config: BuildConfig) -> SyncNet | None:
    """SyncNet with the weights of ``qa.sync_model`` on ``reconstruct.device``, or None."""
    if config.qa.sync_model is None:
        return None
    from pseudo3d.qa.syncnet import SyncNet
    from pseudo3d.reconstruction.device import resolve_device

    return SyncNet.from_checkpoint(config.qa.sync_model, resolve_device(config.reconstruct.device))


def _part(part: T | None, side: str) -> T:
    """A part of the pipeline; one built without that side (``track=False``, ``reconstruct=False``)
    holds None there, and a call that needs it is a bug."""
    if part is None:
        raise RuntimeError(f"this SourcePipeline was built without its {side} side")
    return part


def fail_source(outcome: SourceOutcome, stage: str, exc: Exception) -> None:
    """Mark ``outcome`` failed in ``stage`` because of ``exc``, with its failure row (a runner
    that catches a stage's exception itself records it the same way)."""
    error = as_stage_error(exc, stage)
    if not isinstance(exc, StageError):
        log.error("unexpected error in stage %s for %s", stage, outcome.source.uri, exc_info=exc)
    outcome.status = "failed"
    outcome.reason = f"{error.error}: {error.message}"
    outcome.failures.append(Failure.of(outcome.source, error.stage, error.error, error.message))


TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.ENOSPC, errno.EDQUOT, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN,
                              errno.EBUSY, errno.ECONNRESET, errno.ECONNABORTED, errno.ECONNREFUSED,
                              errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH})
"""``errno`` values of an ``OSError`` that say the infrastructure failed, not the input."""


def as_stage_error(exc: BaseException, stage: str) -> StageError:
    """What a stage's exception is as a failure row (``pseudo3d.schemas.failures``): a
    ``StageError`` as it is; out of memory (host, or a GPU's ``torch.OutOfMemoryError``) →
    ``out_of_memory`` and an operating-system I/O failure (``EIO``, ``ENOSPC``, ``ESTALE``, a
    timeout or a lost connection) → ``io_error``, both transient; anything else →
    ``internal_error`` (a bug or an unforeseen input)."""
    if isinstance(exc, StageError):
        return exc
    message = f"{type(exc).__name__}: {exc}"
    if is_out_of_memory(exc):
        return StageError(stage, "out_of_memory", message)
    if isinstance(exc, (TimeoutError, ConnectionError)) or (isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS):
        return StageError(stage, "io_error", message)
    return StageError(stage, "internal_error", message)


def is_out_of_memory(exc: BaseException) -> bool:
    """Host ``MemoryError``, ``torch.OutOfMemoryError`` (CUDA), or an allocator's "out of memory"."""
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()))


def release_memory() -> None:
    """Give cached GPU memory back after an out-of-memory error (nothing to do without PyTorch)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
