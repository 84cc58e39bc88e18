"""The per-source stage chain: probe → decode+track → reconstruct → smooth → qa → encode.

It comes in three steps so a runner can place them: :meth:`SourcePipeline.track` (CPU:
probe, decode, track, crops), :meth:`SourcePipeline.reconstruct` (batched over the clips of
several sources, on a GPU when there is one) and :meth:`SourcePipeline.finish` (smooth, measure,
encode). Every failure becomes data (a :class:`Failure` row); nothing raises out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from pseudo3d.config import BuildConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.encode import encode_clip
from pseudo3d.pipelines.probe import Prober
from pseudo3d.pipelines.smooth import Smooth
from pseudo3d.pipelines.track import DecodeTrack
from pseudo3d.qa.audio import frame_envelope
from pseudo3d.qa.filters import check_clip
from pseudo3d.qa.metrics import clip_metrics
from pseudo3d.qa.sync import mouth_opening
from pseudo3d.reconstruction import BACKENDS, make_backend
from pseudo3d.schemas.records import Clip, ClipResult, Failure, ProbeInfo, Source, SourceOutcome

log = logging.getLogger(__name__)

TRACKING_SMOOTHED = {"landmarks_2d": "linear"}
"""Tracking outputs every backend's samples carry, raw and smoothed, beside the backend's own."""


@dataclass
class InFlight:
    """A source between stages: its outcome so far, its clips and their reconstructions."""

    outcome: SourceOutcome
    clips: list[Clip] = field(default_factory=list)
    outputs: list[dict[str, np.ndarray] | None] = field(default_factory=list)

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
        self.prober = Prober(config.decode, config.limits) if track else None
        self.decode_track = DecodeTrack(config.decode, config.track,
                                        want_crops=spec.needs_crops or config.shards.write_crops,
                                        want_sync_crops=config.qa.sync_model is not None) if track else None
        self.syncnet = _load_syncnet(config) if reconstruct else None
        self.smooth = Smooth(config.smoothing, {**TRACKING_SMOOTHED, **self.backend.smoothed}) if reconstruct else None
        self.on_probe: Callable[[ProbeInfo], None] | None = None
        """Called after a source is probed (the local runner sets the watchdog's deadline from it)."""

    def __call__(self, source: Source) -> SourceOutcome:
        item = self.track(source)
        self.reconstruct([item])
        return self.finish(item)

    def track(self, source: Source) -> InFlight:
        item = InFlight(SourceOutcome(source=source, status="failed"))
        outcome = item.outcome
        stage = "probe"
        try:
            outcome.probe = self.prober(source)
            if self.on_probe is not None:
                self.on_probe(outcome.probe)
            stage = "track"
            tracked = self.decode_track(source, outcome.probe)
            outcome.n_frames_decoded = tracked.n_frames
            outcome.failures.extend(tracked.failures)
            if not tracked.clips:
                short = sum(f.error == "clip_too_short" for f in tracked.failures)
                raise StageError("track", "no_usable_clip",
                                 f"{short} face track(s) found, none at least "
                                 f"track.min_clip_s={self.config.track.min_clip_s:g} s long")
            item.clips = tracked.clips
        except Exception as exc:  # StageError, or a bug / unforeseen input: never stops the build
            fail_source(outcome, stage, exc)
        return item

    def reconstruct(self, items: list[InFlight]) -> None:
        """Reconstruct the clips of ``items`` in one batch; a clip that fails gets a row."""
        clips = [clip for item in items for clip in item.clips]
        if not clips:
            return
        try:
            results = self.backend.reconstruct_batch(clips)
        except Exception as exc:  # the whole batch failed: every clip in it gets the row
            log.exception("reconstruction failed for a batch of %d clips", len(clips))
            results = [exc] * len(clips)
        position = 0
        for item in items:
            item.outputs = []
            for clip in item.clips:
                result = results[position]
                position += 1
                if isinstance(result, Exception):
                    error = result if isinstance(result, StageError) else StageError(
                        "reconstruct", "internal_error", f"{type(result).__name__}: {result}")
                    item.outcome.failures.append(Failure(clip.source.source_id, clip.source.uri, error.stage,
                                                         error.error, error.message, clip=clip.key,
                                                         duration_s=clip.n_frames / clip.fps))
                    item.outputs.append(None)
                else:
                    item.outputs.append(result)

    def finish(self, item: InFlight) -> SourceOutcome:
        """Smooth, measure, filter and encode the reconstructed clips; decide the source's status."""
        outcome = item.outcome
        if outcome.reason:  # failed before reconstruction
            return outcome
        outcome.assets = self.asset_hashes()
        try:
            for clip, arrays in zip(item.clips, item.outputs):
                if arrays is None:
                    continue
                result = self.finish_clip(clip, arrays)
                rejections = check_clip(result.metrics, self.config.qa, clip.has_audio)
                if rejections:
                    outcome.failures.append(Failure(
                        clip.source.source_id, clip.source.uri, "qa", rejections[0].metric,
                        "; ".join(rejection.describe() for rejection in rejections),
                        clip=clip.key, duration_s=clip.n_frames / clip.fps))
                    continue
                outcome.samples.append(encode_clip(result))
        except Exception as exc:
            fail_source(outcome, "encode", exc)
            outcome.samples = []
            return outcome
        if outcome.samples:
            outcome.status = "ok"
        elif any(failure.stage == "qa" for failure in outcome.failures):
            outcome.reason = "qa: every clip was filtered out (see its failure rows)"
        else:
            outcome.reason = "reconstruct: every clip failed reconstruction"
        return outcome

    def finish_clip(self, clip: Clip, outputs: dict[str, np.ndarray]) -> ClipResult:
        arrays = self.smooth({"landmarks_2d": clip.landmarks[..., :2].astype(np.float32), **outputs}, clip.fps)
        arrays["confidence"] = clip.confidence.astype(np.float32)
        arrays["interpolated"] = clip.interpolated.astype(bool)
        arrays["crop_transform"] = clip.crop_transforms.astype(np.float32)
        arrays["mouth_open"] = mouth_opening(clip.landmarks)
        arrays["audio_envelope"] = frame_envelope(clip.audio, clip.sample_rate, clip.fps, clip.n_frames)
        if self.config.shards.write_crops and clip.crops is not None:
            arrays["crops"] = clip.crops
        meta = {
            "backend": self.backend.name,
            "assets": self.asset_hashes(),
            "smoothing": self.smooth.describe(clip.fps),
            "crop": {"size": self.config.track.crop_size, "scale": self.config.track.crop_scale},
            "per_clip_arrays": sorted(self.backend.per_clip),
            "has_audio": clip.has_audio,
        }
        metrics = clip_metrics(clip, arrays, self.config.qa.av_max_lag_s)
        if self.syncnet is not None:
            metrics.update(self._syncnet_metrics(clip))
        return ClipResult(clip=clip, arrays=arrays, meta=meta, metrics=metrics)

    def asset_hashes(self) -> dict[str, str]:
        """Asset name → SHA-256 of every user file the samples depend on: the backend's, and
        SyncNet's weights when QA scores with them."""
        return {**self.backend.asset_hashes(), **(self.syncnet.asset_hashes if self.syncnet is not None else {})}

    def _syncnet_metrics(self, clip: Clip) -> dict[str, float]:
        """``lse_d``, ``lse_c`` and ``syncnet_offset_frames`` of one clip (NaN without audio)."""
        from pseudo3d.qa.syncnet import SYNCNET_METRICS, syncnet_scores

        if not clip.has_audio or clip.sync_crops is None:
            return dict.fromkeys(SYNCNET_METRICS, float("nan"))
        return syncnet_scores(self.syncnet, clip.sync_crops, clip.audio, batch_size=self.config.qa.sync_batch_size,
                              sample_rate=clip.sample_rate, fps=clip.fps)


def uses_torch(config: BuildConfig) -> bool:
    """Whether the reconstruct side runs PyTorch models, and so can use a GPU: a GPU-capable
    backend, or SyncNet scoring in QA (``qa.sync_model``)."""
    return BACKENDS[config.backend].gpu_capable or config.qa.sync_model is not None


def _load_syncnet(config: BuildConfig):
    """SyncNet with the weights of ``qa.sync_model`` on ``reconstruct.device``, or None."""
    if config.qa.sync_model is None:
        return None
    from pseudo3d.qa.syncnet import SyncNet
    from pseudo3d.reconstruction.device import resolve_device

    return SyncNet.from_checkpoint(config.qa.sync_model, resolve_device(config.reconstruct.device))


def fail_source(outcome: SourceOutcome, stage: str, exc: Exception) -> None:
    """Mark ``outcome`` failed in ``stage`` because of ``exc``, with its failure row (a runner
    that catches a stage's exception itself records it the same way)."""
    if isinstance(exc, StageError):
        error, message, stage = exc.error, exc.message, exc.stage
    else:
        log.error("unexpected error in stage %s for %s", stage, outcome.source.uri, exc_info=exc)
        error, message = "internal_error", f"{type(exc).__name__}: {exc}"
    outcome.status = "failed"
    outcome.reason = f"{error}: {message}"
    outcome.failures.append(Failure(outcome.source.source_id, outcome.source.uri, stage, error, message))
