"""The per-source stage chain used by the local runner: probe → decode+track → reconstruct →
smooth → qa → encode. Every failure becomes data (a :class:`Failure` row); nothing raises out.
"""

from __future__ import annotations

import logging

import numpy as np

from pseudo3d.config import BuildConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.encode import encode_clip
from pseudo3d.pipelines.probe import Prober
from pseudo3d.pipelines.smooth import Smooth
from pseudo3d.pipelines.track import DecodeTrack
from pseudo3d.qa.metrics import clip_metrics
from pseudo3d.reconstruction import make_backend
from pseudo3d.schemas.records import Clip, ClipResult, Failure, Source, SourceOutcome

log = logging.getLogger(__name__)


class SourcePipeline:
    """All stages for one worker; models load once, when the pipeline is built."""

    def __init__(self, config: BuildConfig):
        self.config = config
        self.backend = make_backend(config.backend)
        self.prober = Prober(config.decode)
        self.decode_track = DecodeTrack(config.decode, config.track,
                                        want_crops=self.backend.needs_crops or config.shards.write_crops)
        self.smooth = Smooth(config.smoothing, self.backend.smoothed)

    def __call__(self, source: Source) -> SourceOutcome:
        stage = "probe"
        outcome = SourceOutcome(source=source, status="failed", assets=self.backend.asset_hashes())
        try:
            outcome.probe = self.prober(source)
            stage = "track"
            tracked = self.decode_track(source, outcome.probe)
            outcome.n_frames_decoded = tracked.n_frames
            outcome.failures.extend(tracked.failures)
            if not tracked.clips:
                short = sum(f.error == "clip_too_short" for f in tracked.failures)
                raise StageError("track", "no_usable_clip",
                                 f"{short} face track(s) found, none at least "
                                 f"track.min_clip_s={self.config.track.min_clip_s:g} s long")
            stage = "reconstruct"
            outputs = self.backend.reconstruct_batch(tracked.clips)
            stage = "encode"
            outcome.samples = [encode_clip(self.finish(clip, arrays)) for clip, arrays in zip(tracked.clips, outputs)]
            outcome.status = "ok"
        except StageError as exc:
            outcome.reason = f"{exc.error}: {exc.message}"
            outcome.failures.append(Failure(source.source_id, source.uri, exc.stage, exc.error, exc.message))
        except Exception as exc:  # a bug or an unforeseen input must not stop the build
            log.exception("unexpected error in stage %s for %s", stage, source.uri)
            message = f"{type(exc).__name__}: {exc}"
            outcome.reason = f"internal_error: {message}"
            outcome.failures.append(Failure(source.source_id, source.uri, stage, "internal_error", message))
        return outcome

    def finish(self, clip: Clip, outputs: dict[str, np.ndarray]) -> ClipResult:
        """Smooth, add the tracking arrays, measure: everything after reconstruction."""
        arrays = self.smooth(outputs, clip.fps)
        arrays["confidence"] = clip.confidence.astype(np.float32)
        arrays["interpolated"] = clip.interpolated.astype(bool)
        arrays["crop_transform"] = clip.crop_transforms.astype(np.float32)
        if self.config.shards.write_crops and clip.crops is not None:
            arrays["crops"] = clip.crops
        meta = {
            "backend": self.backend.name,
            "assets": self.backend.asset_hashes(),
            "smoothing": self.smooth.describe(clip.fps),
            "crop": {"size": self.config.track.crop_size, "scale": self.config.track.crop_scale},
        }
        return ClipResult(clip=clip, arrays=arrays, meta=meta, metrics=clip_metrics(clip, arrays))
