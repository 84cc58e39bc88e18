import math

from pseudo3d.config import QAConfig
from pseudo3d.qa.filters import RULES, check_clip

GOOD = {"confidence_mean": 0.9, "interpolated_fraction": 0.0, "face_size_px": 200.0, "reprojection_error_px": 1.0,
        "audio_loudness_dbfs": -20.0, "silence_fraction": 0.3, "clipping_fraction": 0.0, "av_offset_s": 0.0,
        "av_sync_strength": 0.9}


def test_good_clip_passes_and_every_rule_has_an_option():
    assert check_clip(GOOD, QAConfig(), has_audio=True) == []
    for rule in RULES:
        assert hasattr(QAConfig(), rule.option) and rule.metric in GOOD


def test_each_rule_rejects_and_names_its_option():
    bad = {"confidence_mean": 0.2, "interpolated_fraction": 0.5, "face_size_px": 30.0, "reprojection_error_px": 50.0,
           "audio_loudness_dbfs": -70.0, "silence_fraction": 0.95, "clipping_fraction": 0.2, "av_offset_s": -0.2,
           "av_sync_strength": 0.0}
    for metric, value in bad.items():
        [rejection] = check_clip({**GOOD, metric: value}, QAConfig(), has_audio=True)
        assert rejection.metric == metric and f"qa.{rejection.option}" in rejection.describe()


def test_audio_rules_skip_videos_without_audio_and_nan_never_rejects():
    silent = {**GOOD, "silence_fraction": 1.0, "av_sync_strength": math.nan}
    assert check_clip(silent, QAConfig(), has_audio=False) == []
    assert check_clip({**GOOD, "reprojection_error_px": math.nan}, QAConfig(), has_audio=True) == []


def test_disabled_filters_keep_everything():
    assert check_clip({**GOOD, "confidence_mean": 0.0}, QAConfig(enabled=False), has_audio=True) == []
