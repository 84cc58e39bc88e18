import math

import pytest

from pseudo3d.config import ConfigError, QAConfig
from pseudo3d.qa.filters import RULES, check_clip

# A clip in sync: a significant peak, offset and its interval inside the tolerance.
GOOD = {"confidence_mean": 0.9, "interpolated_fraction": 0.0, "face_size_px": 200.0, "reprojection_error_px": 1.0,
        "audio_loudness_dbfs": -20.0, "silence_fraction": 0.3, "clipping_fraction": 0.0, "av_offset_s": 0.0,
        "av_offset_ci_low_s": -0.06, "av_offset_ci_high_s": 0.06, "av_sync_strength": 0.6, "av_sync_p_value": 0.001,
        "av_speech_s": 30.0, "av_mouth_motion": 0.15, "lse_d": 7.0, "lse_c": 7.5, "syncnet_offset_frames": 0.0}
# Confidently off by +0.2 s: significant, and the whole interval beyond +0.08 s.
OFF = {"av_offset_s": 0.2, "av_offset_ci_low_s": 0.14, "av_offset_ci_high_s": 0.26}
# No peak although 30 s of speech and a moving mouth: dubbed.
UNRELATED = {"av_sync_p_value": 0.4, "av_sync_strength": 0.1}


def test_good_clip_passes_and_every_rule_has_an_option():
    assert check_clip(GOOD, QAConfig(), has_audio=True) == []
    for rule in RULES:
        assert hasattr(QAConfig(), rule.option) and rule.metric in GOOD


def test_each_rule_rejects_and_names_its_option():
    bad = {"confidence_mean": {"confidence_mean": 0.2}, "interpolated_fraction": {"interpolated_fraction": 0.5},
           "face_size_px": {"face_size_px": 30.0}, "reprojection_error_px": {"reprojection_error_px": 50.0},
           "audio_loudness_dbfs": {"audio_loudness_dbfs": -70.0}, "silence_fraction": {"silence_fraction": 0.95},
           "clipping_fraction": {"clipping_fraction": 0.2}, "av_offset_s": OFF, "av_sync_p_value": UNRELATED,
           "lse_c": {"lse_c": 1.2}, "lse_d": {"lse_d": 11.0}, "syncnet_offset_frames": {"syncnet_offset_frames": -4.0}}
    assert set(bad) == {rule.metric for rule in RULES}
    config = QAConfig(max_lse_d=9.0)  # off by default: see test_syncnet_rules below
    for metric, change in bad.items():
        [rejection] = check_clip({**GOOD, **change}, config, has_audio=True)
        assert rejection.metric == metric and f"qa.{rejection.option}" in rejection.describe()


def test_syncnet_rules():
    """LSE-C is SyncNet's confidence: below qa.min_lse_c (3) the clip is rejected, and only above it
    is its offset judged (±2 frames); qa.max_lse_d is off (null) unless set; clips without
    SyncNet figures (no qa.sync_model) are never judged by these rules."""
    config = QAConfig()
    assert config.min_lse_c == 3.0 and config.max_lse_d is None and config.max_abs_syncnet_offset_frames == 2.0
    [rejection] = check_clip({**GOOD, "lse_c": 2.9, "syncnet_offset_frames": 9.0}, config, True)
    assert rejection.describe() == "lse_c = 2.9 is below qa.min_lse_c = 3"
    [rejection] = check_clip({**GOOD, "syncnet_offset_frames": 3.0}, config, True)
    assert rejection.describe() == ("syncnet_offset_frames (absolute) = 3 is above "
                                    "qa.max_abs_syncnet_offset_frames = 2 (lse_c = 7.5, at least qa.min_lse_c = 3)")
    assert check_clip({**GOOD, "syncnet_offset_frames": -2.0, "lse_d": 25.0}, config, True) == []
    without = {key: value for key, value in GOOD.items() if key not in ("lse_d", "lse_c", "syncnet_offset_frames")}
    assert check_clip(without, config, True) == []
    assert check_clip({**GOOD, "lse_c": 0.1}, config, has_audio=False) == []


def test_offset_rejects_only_when_confident():
    config = QAConfig()
    [rejection] = check_clip({**GOOD, **OFF}, config, has_audio=True)
    assert rejection.describe() == ("av_offset_s (absolute) = 0.2 is above qa.max_abs_av_offset_s = 0.08 "
                                    "(interval 0.140 … 0.260 s, peak p = 0.001)")
    # both signs
    early = {"av_offset_s": -0.2, "av_offset_ci_low_s": -0.26, "av_offset_ci_high_s": -0.14}
    assert [r.metric for r in check_clip({**GOOD, **early}, config, True)] == ["av_offset_s"]
    # the interval reaches into the tolerance: kept, however far the estimate
    assert check_clip({**GOOD, **OFF, "av_offset_ci_low_s": 0.07}, config, True) == []
    assert check_clip({**GOOD, "av_offset_s": -0.3, "av_offset_ci_low_s": -0.4, "av_offset_ci_high_s": -0.05},
                      config, True) == []
    # no significant peak: the offset is meaningless and never rejects (short clip: not unrelated either)
    assert check_clip({**GOOD, **OFF, "av_sync_p_value": 0.2, "av_speech_s": 5.0}, config, True) == []


def test_missing_peak_rejects_only_with_enough_speech_and_mouth_motion():
    config = QAConfig()
    [rejection] = check_clip({**GOOD, **UNRELATED}, config, has_audio=True)
    assert rejection.describe().startswith("av_sync_p_value = 0.4 is above qa.max_av_sync_p_value = 0.05 with 30.0 s "
                                           "of speech and mouth motion 0.150")
    assert check_clip({**GOOD, **UNRELATED, "av_speech_s": config.min_av_speech_s - 0.1}, config, True) == []
    assert check_clip({**GOOD, **UNRELATED, "av_mouth_motion": 0.03}, config, True) == []
    assert check_clip({**GOOD, **UNRELATED, "av_mouth_motion": math.nan}, config, True) == []
    assert check_clip({**GOOD, "av_sync_p_value": config.max_av_sync_p_value}, config, True) == []


def test_audio_rules_skip_videos_without_audio_and_nan_never_rejects():
    silent = {**GOOD, "silence_fraction": 1.0, **OFF, **UNRELATED}
    assert check_clip(silent, QAConfig(), has_audio=False) == []
    assert check_clip({**GOOD, "reprojection_error_px": math.nan}, QAConfig(), has_audio=True) == []
    unmeasured = {**GOOD, **dict.fromkeys(("av_offset_s", "av_offset_ci_low_s", "av_offset_ci_high_s",
                                           "av_sync_strength", "av_sync_p_value"), math.nan)}
    assert check_clip(unmeasured, QAConfig(), has_audio=True) == []


def test_disabled_filters_keep_everything():
    assert check_clip({**GOOD, "confidence_mean": 0.0, **OFF}, QAConfig(enabled=False), has_audio=True) == []


@pytest.mark.parametrize("option, value", [("max_av_sync_p_value", 0.0), ("max_av_sync_p_value", 1.0),
                                           ("min_av_speech_s", -1.0), ("min_av_mouth_motion", -0.1),
                                           ("max_abs_av_offset_s", 0.0), ("min_lse_c", -1.0), ("max_lse_d", 0.0),
                                           ("max_abs_syncnet_offset_frames", 16.0), ("sync_batch_size", 0)])
def test_bad_sync_options_are_refused_by_name(option, value):
    with pytest.raises(ConfigError, match=option):
        QAConfig(**{option: value})
