"""The per-clip quality filters: which metric each ``qa`` option bounds, and the check.

A clip outside any threshold is rejected as a whole; its failure row names the first metric that
failed (in the order of :data:`RULES`) and its message lists every one. Audio rules apply only
when the source has an audio stream, and a metric that could not be measured (NaN) never
rejects: missing evidence is reported, not punished.

The two audio-visual sync rules judge an estimate together with its uncertainty (see
:mod:`pseudo3d.qa.sync`): an offset rejects only when the peak is significant and the whole
interval lies beyond the tolerance; a missing peak rejects only when the clip has enough speech
and mouth motion for in-sync speech to show one. SyncNet's rules (with ``qa.sync_model``) take
LSE-C as SyncNet's confidence: below ``min_lse_c`` the clip is rejected, and its offset is judged
only above it. ``qa.max_lse_d`` is optional: null (its default) turns it off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from pseudo3d.config import QAConfig


@dataclass(frozen=True)
class Rule:
    metric: str
    """Manifest column."""
    option: str
    """``qa`` option holding the threshold."""
    bound: Literal["min", "max", "max_abs"]
    audio: bool = False

    def breaks(self, value: float, metrics: Mapping[str, float], config: QAConfig) -> bool:
        """Whether the finite ``value`` of :attr:`metric` is outside the threshold."""
        threshold = getattr(config, self.option)
        return {"min": value < threshold, "max": value > threshold, "max_abs": abs(value) > threshold}[self.bound]

    def detail(self, metrics: Mapping[str, float], config: QAConfig) -> str:
        """What the message adds after the bound (empty for plain bounds)."""
        return ""


def _finite(metrics: Mapping[str, float], name: str) -> float:
    value = metrics.get(name)
    return float(value) if value is not None and math.isfinite(value) else math.nan


@dataclass(frozen=True)
class ConfidentOffsetRule(Rule):
    """Rejects an offset only when the peak is significant (``av_sync_p_value`` ≤
    ``max_av_sync_p_value``) and its whole interval lies beyond ``±max_abs_av_offset_s``."""

    def breaks(self, value: float, metrics: Mapping[str, float], config: QAConfig) -> bool:
        p_value = _finite(metrics, "av_sync_p_value")
        low, high = _finite(metrics, "av_offset_ci_low_s"), _finite(metrics, "av_offset_ci_high_s")
        tolerance = config.max_abs_av_offset_s
        if not (p_value <= config.max_av_sync_p_value) or math.isnan(low) or math.isnan(high):
            return False
        return low > tolerance or high < -tolerance

    def detail(self, metrics: Mapping[str, float], config: QAConfig) -> str:
        return (f" (interval {_finite(metrics, 'av_offset_ci_low_s'):.3f} … {_finite(metrics, 'av_offset_ci_high_s'):.3f} s, "
                f"peak p = {_finite(metrics, 'av_sync_p_value'):.3g})")


@dataclass(frozen=True)
class UnrelatedAudioRule(Rule):
    """Rejects a clip without a significant audio-visual peak (``av_sync_p_value`` above
    ``max_av_sync_p_value``) only when it has at least ``min_av_speech_s`` of speech and mouth
    motion of at least ``min_av_mouth_motion``: dubbed or unrelated audio."""

    def breaks(self, value: float, metrics: Mapping[str, float], config: QAConfig) -> bool:
        speech, motion = _finite(metrics, "av_speech_s"), _finite(metrics, "av_mouth_motion")
        return (value > config.max_av_sync_p_value and speech >= config.min_av_speech_s
                and motion >= config.min_av_mouth_motion)

    def detail(self, metrics: Mapping[str, float], config: QAConfig) -> str:
        return (f" with {_finite(metrics, 'av_speech_s'):.1f} s of speech and mouth motion "
                f"{_finite(metrics, 'av_mouth_motion'):.3f}: no audio-visual peak (dubbed or unrelated audio?)")


@dataclass(frozen=True)
class ConfidentSyncNetOffsetRule(Rule):
    """Rejects a SyncNet offset beyond ``±max_abs_syncnet_offset_frames`` only where SyncNet is
    confident (``lse_c`` at least ``min_lse_c``); an unconfident clip is the LSE-C rule's to judge."""

    def breaks(self, value: float, metrics: Mapping[str, float], config: QAConfig) -> bool:
        return _finite(metrics, "lse_c") >= config.min_lse_c and abs(value) > config.max_abs_syncnet_offset_frames

    def detail(self, metrics: Mapping[str, float], config: QAConfig) -> str:
        return f" (lse_c = {_finite(metrics, 'lse_c'):.3g}, at least qa.min_lse_c = {config.min_lse_c:g})"


RULES: tuple[Rule, ...] = (
    Rule("confidence_mean", "min_confidence_mean", "min"),
    Rule("interpolated_fraction", "max_interpolated_fraction", "max"),
    Rule("face_size_px", "min_face_size_px", "min"),
    Rule("reprojection_error_px", "max_reprojection_error_px", "max"),
    Rule("audio_loudness_dbfs", "min_audio_loudness_dbfs", "min", audio=True),
    Rule("silence_fraction", "max_silence_fraction", "max", audio=True),
    Rule("clipping_fraction", "max_clipping_fraction", "max", audio=True),
    ConfidentOffsetRule("av_offset_s", "max_abs_av_offset_s", "max_abs", audio=True),
    UnrelatedAudioRule("av_sync_p_value", "max_av_sync_p_value", "max", audio=True),
    # SyncNet's figures exist only when qa.sync_model is set; without them these rules never apply.
    Rule("lse_c", "min_lse_c", "min", audio=True),
    Rule("lse_d", "max_lse_d", "max", audio=True),
    ConfidentSyncNetOffsetRule("syncnet_offset_frames", "max_abs_syncnet_offset_frames", "max_abs", audio=True),
)


@dataclass(frozen=True)
class Rejection:
    metric: str
    value: float
    option: str
    threshold: float
    detail: str = ""

    def as_row(self) -> dict[str, Any]:
        """The rejection as a failure row carries it (``Failure.rejections``)."""
        return {"metric": self.metric, "value": float(self.value), "option": self.option,
                "threshold": float(self.threshold)}

    def describe(self) -> str:
        relation = {"min_": "below", "max_": "above"}[self.option[:4]]
        shown = abs(self.value) if self.option.startswith("max_abs") else self.value
        absolute = " (absolute)" if self.option.startswith("max_abs") else ""
        return f"{self.metric}{absolute} = {shown:.4g} is {relation} qa.{self.option} = {self.threshold:g}{self.detail}"


def check_clip(metrics: Mapping[str, float], config: QAConfig, has_audio: bool) -> list[Rejection]:
    """Every rule the clip breaks, in rule order (empty: the clip passes, or filters are off)."""
    if not config.enabled:
        return []
    rejections = []
    for rule in RULES:
        value = metrics.get(rule.metric)
        if value is None or not math.isfinite(value) or (rule.audio and not has_audio):
            continue
        if getattr(config, rule.option) is None:  # an optional threshold left off (null)
            continue
        if rule.breaks(float(value), metrics, config):
            rejections.append(Rejection(rule.metric, float(value), rule.option, float(getattr(config, rule.option)),
                                        rule.detail(metrics, config)))
    return rejections
