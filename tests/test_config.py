from pathlib import Path

import pytest

from pseudo3d.config import BuildConfig
from pseudo3d.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "build.yaml"


def test_shipped_yaml_lists_every_default():
    assert BuildConfig.from_yaml(SHIPPED) == BuildConfig()
    written = SHIPPED.read_text()
    for section, values in BuildConfig().to_dict().items():
        assert f"{section}:" in written
        if isinstance(values, dict):
            for option in values:
                assert f"{option}:" in written, f"configs/build.yaml does not document {section}.{option}"


def test_unknown_option_is_named(tmp_path):
    path = tmp_path / "build.yaml"
    path.write_text("track:\n  min_clip: 3\n")
    with pytest.raises(ConfigError, match=r"unknown option track\.min_clip"):
        BuildConfig.from_yaml(path)


@pytest.mark.parametrize("text, option", [
    ("decode:\n  fps: 0\n", "decode.fps"),
    ("track:\n  min_clip_s: -1\n", "track.min_clip_s"),
    ("track:\n  min_clip_s: 5\n  max_clip_s: 2\n", "track.max_clip_s"),
    ("smoothing:\n  mesh: {window_s: -0.1}\n", "smoothing.mesh.window_s"),
    ("shards:\n  max_samples: many\n", "shards.max_samples"),
    ("shards:\n  max_unit_bytes: 1000\n", "shards.max_unit_bytes"),
    ("backend: deca-v9\n", "backend"),
    ("decode:\n  require_audio: 1\n", "decode.require_audio"),
    ("reconstruct:\n  precision: fp16\n", "reconstruct.precision"),
])
def test_bad_values_name_the_option(tmp_path, text, option):
    path = tmp_path / "build.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=option.replace(".", r"\.")):
        BuildConfig.from_yaml(path)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        BuildConfig.from_yaml(tmp_path / "absent.yaml")


def test_fingerprint_follows_content():
    base = BuildConfig()
    assert base.fingerprint() == BuildConfig().fingerprint()
    assert base.with_overrides(decode={"fps": 30}).fingerprint() != base.fingerprint()
    assert base.with_overrides(decode={"fps": 30}).decode.sample_rate == 16000
    # device and precision decide how, not what: they are recorded per unit as numerics instead
    assert base.with_overrides(reconstruct={"precision": "bf16"}).fingerprint() == base.fingerprint()


def test_options_added_later_leave_the_fingerprint_alone_at_their_default(tmp_path):
    """A dataset built before ``reconstruct.spectre_checkpoint`` and ``flame_profile`` existed has
    the fingerprint of today's defaults, so it still resumes; set, they are content."""
    flame = {"flame_model": str(tmp_path / "generic_model.pkl"), "spectre_checkpoint": str(tmp_path / "s.tar")}
    spectre = BuildConfig().with_overrides(backend="spectre", reconstruct=flame)
    from pseudo3d.config import _fingerprint_view

    view = _fingerprint_view(BuildConfig())
    assert "spectre_checkpoint" not in view["reconstruct"] and "flame_profile" not in view["reconstruct"]
    assert "deca_checkpoint" in view["reconstruct"]  # an option from the start is always there
    assert spectre.with_overrides(reconstruct={"flame_profile": "tfhp"}).fingerprint() != spectre.fingerprint()
    other = spectre.with_overrides(reconstruct={"spectre_checkpoint": str(tmp_path / "other.tar")})
    (tmp_path / "s.tar").write_bytes(b"one")
    (tmp_path / "other.tar").write_bytes(b"two")
    assert other.fingerprint() != BuildConfig().with_overrides(backend="spectre", reconstruct=flame).fingerprint()


def test_flame_profile_tfhp_names_what_it_needs():
    flame = {"flame_model": "generic_model.pkl", "spectre_checkpoint": "spectre_model.tar", "flame_profile": "tfhp"}
    with pytest.raises(ConfigError, match="reconstruct.flame_profile tfhp needs a FLAME backend"):
        BuildConfig().with_overrides(reconstruct=flame)
    with pytest.raises(ConfigError, match="decode.fps: 25 and decode.sample_rate: 16000, got 30 and 16000"):
        BuildConfig().with_overrides(backend="spectre", reconstruct=flame, decode={"fps": 30})
    with pytest.raises(ConfigError, match=r"track.min_clip_s must be >= 0.28 s, got 0.2"):
        BuildConfig().with_overrides(backend="spectre", reconstruct=flame, track={"min_clip_s": 0.2})
    with pytest.raises(ConfigError, match="flame_profile must be standard or tfhp, got 'tfhp2'"):
        BuildConfig().with_overrides(reconstruct={"flame_profile": "tfhp2"})
    with pytest.raises(ConfigError, match="track.crop_scale is DECA's crop scale"):
        BuildConfig().with_overrides(backend="spectre", reconstruct=flame, track={"crop_scale": 1.6})


def test_reading_a_configuration_does_not_load_scipy():
    """Every process reads a configuration (the CLI, drivers, workers); SciPy's signal package
    (0.7 s) loads only where smoothing runs (bench/bench_import.py measures the difference)."""
    import subprocess
    import sys

    probe = "import sys, pseudo3d.config, pseudo3d.smoothing; print(sorted(m for m in sys.modules if m.startswith('scipy')))"
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"
    smoothing = "import sys; from pseudo3d.smoothing import savgol_smooth; print('scipy.signal' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", smoothing], check=True, capture_output=True, text=True).stdout.strip() == "True"
