"""The per-clip quality filters: which metric each ``qa`` option bounds, and the check.

A clip outside any threshold is rejected as a whole; its failure row names the first metric that
failed (in the order of :data:`RULES`) and its message lists every one. Audio rules apply only
when the source has an audio stream, and a metric that could not be measured (NaN) never
rejects: missing evidence is reported, not punished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping

from pseudo3d.config import QAConfig


@dataclass(frozen=True)
class Rule:
    metric: str
    """Manifest column."""
    option: str
    """``qa`` option holding the threshold."""
    bound: Literal["min", "max", "max_abs"]
    audio: bool = False


RULES: tuple[Rule, ...] = (
    Rule("confidence_mean", "min_confidence_mean", "min"),
    Rule("interpolated_fraction", "max_interpolated_fraction", "max"),
    Rule("face_size_px", "min_face_size_px", "min"),
    Rule("reprojection_error_px", "max_reprojection_error_px", "max"),
    Rule("audio_loudness_dbfs", "min_audio_loudness_dbfs", "min", audio=True),
    Rule("silence_fraction", "max_silence_fraction", "max", audio=True),
    Rule("clipping_fraction", "max_clipping_fraction", "max", audio=True),
    Rule("av_offset_s", "max_abs_av_offset_s", "max_abs", audio=True),
    Rule("av_sync_strength", "min_av_sync_strength", "min", audio=True),
)


@dataclass(frozen=True)
class Rejection:
    metric: str
    value: float
    option: str
    threshold: float

    def describe(self) -> str:
        relation = {"min_": "below", "max_": "above"}[self.option[:4]]
        shown = abs(self.value) if self.option.startswith("max_abs") else self.value
        return f"{self.metric}{' (absolute)' if self.option.startswith('max_abs') else ''} = {shown:.4g} is {relation} qa.{self.option} = {self.threshold:g}"


def check_clip(metrics: Mapping[str, float], config: QAConfig, has_audio: bool) -> list[Rejection]:
    """Every rule the clip breaks, in rule order (empty: the clip passes, or filters are off)."""
    if not config.enabled:
        return []
    rejections = []
    for rule in RULES:
        value = metrics.get(rule.metric)
        if value is None or not math.isfinite(value) or (rule.audio and not has_audio):
            continue
        threshold = getattr(config, rule.option)
        broken = {"min": value < threshold, "max": value > threshold, "max_abs": abs(value) > threshold}[rule.bound]
        if broken:
            rejections.append(Rejection(rule.metric, float(value), rule.option, float(threshold)))
    return rejections
