"""NormStats, compute_norm_stats, collate_windows and the window maths."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pseudo3d.training.data import NormStats, collate_windows, compute_norm_stats  # noqa: E402
from pseudo3d.training.data.windows import audio_window_length, clip_windows, window_starts  # noqa: E402


def _windows(n: int, frames: int = 6, dim: int = 4, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 10.0, 0.0, 1e-7][:dim])
    return [{"audio": torch.zeros(100), "target": torch.as_tensor(rng.normal(3.0, 1.0, (frames, dim)) * scale,
                                                                  dtype=torch.float32),
             "key": f"k{i}", "start_frame": i, "fps": 30.0} for i in range(n)]


def test_norm_stats_match_numpy_and_floor_the_std():
    windows = _windows(50)
    stats = compute_norm_stats(windows)
    frames = np.concatenate([w["target"].numpy() for w in windows]).astype(np.float64)
    np.testing.assert_allclose(stats.mean, frames.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats.std[:2], frames.std(axis=0)[:2], rtol=1e-5)
    assert stats.std[2] == stats.std[3] == np.float32(1e-4) and stats.count == 300
    assert stats.mean.dtype == stats.std.dtype == np.float32
    assert compute_norm_stats(windows, min_std=1e-9).std[3] < 1e-6


def test_norm_stats_max_windows_batches_and_determinism():
    windows = _windows(50)
    first_ten = compute_norm_stats(windows, max_windows=10)
    np.testing.assert_array_equal(first_ten.mean, compute_norm_stats(windows[:10]).mean)
    batches = [collate_windows(windows[i:i + 8]) for i in range(0, 50, 8)]
    from_batches = compute_norm_stats(batches, max_windows=10)
    np.testing.assert_allclose(from_batches.mean, first_ten.mean, rtol=1e-6)
    np.testing.assert_allclose(from_batches.std, first_ten.std, rtol=1e-6)
    assert from_batches.count == 60
    again = compute_norm_stats(_windows(50))
    assert again.mean.tobytes() == compute_norm_stats(windows).mean.tobytes()
    with pytest.raises(ValueError, match="no windows"):
        compute_norm_stats([])


def test_norm_stats_tensors_round_trip():
    stats = compute_norm_stats(_windows(5))
    tensors = stats.to_tensors(prefix="norm.")
    assert set(tensors) == {"norm.mean", "norm.std"} and tensors["norm.std"].dtype == torch.float32
    back = NormStats.from_tensors(tensors, prefix="norm.")
    np.testing.assert_array_equal(back.mean, stats.mean)
    np.testing.assert_array_equal(back.std, stats.std)
    safetensors = pytest.importorskip("safetensors.torch")
    loaded = safetensors.load(safetensors.save(stats.to_tensors()))
    np.testing.assert_array_equal(NormStats.from_tensors(loaded).std, stats.std)
    with pytest.raises(KeyError, match="std"):
        NormStats.from_tensors({"mean": tensors["norm.mean"]})
    with pytest.raises(ValueError, match="positive"):
        NormStats.from_tensors({"mean": torch.zeros(3), "std": torch.zeros(3)})


def test_collate_stacks_windows():
    batch = collate_windows(_windows(3))
    assert batch["audio"].shape == (3, 100) and batch["target"].shape == (3, 6, 4)
    assert batch["keys"] == ["k0", "k1", "k2"] and batch["start_frame"].tolist() == [0, 1, 2]
    assert batch["fps"].tolist() == [30.0] * 3
    uneven = _windows(2)
    uneven[1]["target"] = torch.zeros(5, 4)
    with pytest.raises(ValueError, match="target shapes differ"):
        collate_windows(uneven)


def test_window_maths():
    assert audio_window_length(50, 25.0) == 32000 and audio_window_length(7, 29.97) == round(7 * 16000 / 29.97)
    assert list(window_starts(25, 10, 5)) == [0, 5, 10, 15] and list(window_starts(9, 10, 5)) == []
    audio = np.arange(1, round(23 / 29.97 * 16000) + 1, dtype=np.float32)  # sample i holds i + 1
    windows = clip_windows("k", audio, np.zeros((23, 2), np.float32), 29.97, 7, 3)
    assert [w.start_frame for w in windows] == [0, 3, 6, 9, 12, 15]
    assert {w.audio.shape[0] for w in windows} == {round(7 * 16000 / 29.97)}
    for w in windows:
        first = round(w.start_frame / 29.97 * 16000)
        piece = audio[first:first + len(w.audio)]
        np.testing.assert_array_equal(w.audio[: len(piece)], piece)
        assert len(w.audio) - len(piece) <= 2 and not w.audio[len(piece):].any()
