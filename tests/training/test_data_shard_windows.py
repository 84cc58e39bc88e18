"""ShardWindows on tiny generated shards: alignment, splits, determinism, mixing, audio shuffle, errors."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from pseudo3d.schemas.sample import encode_sample  # noqa: E402
from pseudo3d.schemas.shard_reader import UnsafeShardError, iter_samples  # noqa: E402
from pseudo3d.training.data import (ShardWindows, TargetSpec, collate_windows, first_sample,  # noqa: E402
                                    resolve_shards, worker_init_fn)
from pseudo3d.training.data.shards import weighted_datasets  # noqa: E402
from pseudo3d.training.data.streams import mix  # noqa: E402
from pseudo3d.training.data.targets import shard_targets  # noqa: E402

FPS = 25.0
N_VERTICES = 6


def _clip(key: str, n_frames: int, rng: np.random.Generator, *, fps: float = FPS, backend: str = "mediapipe",
          start_s: float = 0.0, audio_shortfall: int = 0) -> dict[str, bytes]:
    """One sample's members: frame index in every vertex's x, random y/z, noise audio."""
    n_audio = int(round((start_s + n_frames / fps) * 16000)) - int(round(start_s * 16000)) - audio_shortfall
    audio = rng.uniform(-0.5, 0.5, n_audio).astype(np.float32)
    if backend == "mediapipe":
        mesh = rng.normal(0, 1, (n_frames, N_VERTICES, 3)).astype(np.float32)
        mesh[:, :, 0] = np.arange(n_frames)[:, None]
        arrays = {"mesh_smooth": mesh, "confidence": np.ones(n_frames, np.float32)}
    else:
        arrays = {"flame_expression_smooth": rng.normal(0, 1, (n_frames, 5)).astype(np.float32),
                  "flame_jaw_pose_smooth": rng.normal(0, 0.1, (n_frames, 3)).astype(np.float32),
                  "flame_shape_clip": rng.normal(0, 1, (1, 10)).astype(np.float32)}
    meta = {"key": key, "fps": fps, "n_frames": n_frames, "start_s": start_s, "end_s": start_s + n_frames / fps,
            "sample_rate": 16000, "n_audio_samples": n_audio, "backend": backend,
            "arrays": {name: {"shape": list(a.shape), "dtype": str(a.dtype), "per_frame": name != "flame_shape_clip"}
                       for name, a in arrays.items()}}
    return encode_sample(arrays, audio, 16000, meta)


def _write_tar(path: Path, samples: dict[str, dict[str, bytes]], *, commit: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for key, members in samples.items():
            for suffix, data in members.items():
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    if commit:
        path.with_suffix(".json").write_text(json.dumps({"keys": list(samples)}))
    return path


def make_dataset(root: Path, name: str, clips_per_shard: list[list[int]], seed: int = 0, **clip_args) -> Path:
    """A dataset directory whose shard i holds clips of the given frame counts."""
    rng = np.random.default_rng(seed)
    for i, lengths in enumerate(clips_per_shard):
        samples = {f"{name}{i}-{j:08x}_{j:03d}": _clip(f"{name}{i}-{j:08x}_{j:03d}", n, rng, **clip_args)
                   for j, n in enumerate(lengths)}
        _write_tar(root / name / "shards" / f"shard-{i:06d}.tar", samples)
    return root / name


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shards")
    return {
        # 3 shards, 7 clips; the 8-frame clip is shorter than a 10-frame window
        "a": make_dataset(root, "a", [[40, 33], [8, 52, 20], [31, 27]], seed=1),
        "b": make_dataset(root, "b", [[100, 100, 100], [100, 100, 100]], seed=2),
        "c": make_dataset(root, "c", [[100, 100, 100], [100, 100, 100]], seed=3),
        "flame": make_dataset(root, "flame", [[30, 24]], seed=4, backend="deca"),
    }


def _spec(path: Path) -> TargetSpec:
    return TargetSpec.for_shards(first_sample(str(path)))


def _ids(windows) -> list[tuple[str, int]]:
    return [(w["key"], w["start_frame"]) for w in windows]


def _all_windows(path: Path, window: int = 10, stride: int = 5) -> list[tuple[str, int]]:
    expected = []
    for shard in resolve_shards(str(path)):
        for sample in iter_samples(shard):
            n = sample["meta.json"]["n_frames"]
            expected += [(sample["__key__"], s) for s in range(0, n - window + 1, stride)]
    return expected


def test_windows_are_the_shard_audio_and_motion_exactly(data):
    spec = _spec(data["a"])
    assert (spec.kind, spec.dim, spec.n_vertices) == ("mesh_offsets", 3 * N_VERTICES, N_VERTICES)
    assert spec.template == "clip_mean"
    windows = list(ShardWindows([(str(data["a"]), 1.0)], spec, 10, fps=FPS, shuffle_buffer=1))
    samples = {s["__key__"]: s for shard in resolve_shards(str(data["a"])) for s in iter_samples(shard)}
    length = round(10 * 16000 / FPS)
    assert windows and {w["audio"].shape for w in windows} == {(length,)}
    assert {tuple(w["target"].shape) for w in windows} == {(10, 3 * N_VERTICES)}
    for w in windows:
        sample = samples[w["key"]]
        audio, _ = sample["audio.flac"]
        first = round(w["start_frame"] / FPS * 16000)
        piece = audio[first:first + length]
        np.testing.assert_array_equal(w["audio"].numpy()[: len(piece)], piece)
        assert np.all(w["audio"].numpy()[len(piece):] == 0) and length - len(piece) <= 2
        target = shard_targets(spec, {"mesh_smooth": sample["mesh_smooth.npy"]}, "test")
        np.testing.assert_array_equal(w["target"].numpy(), target[w["start_frame"]:w["start_frame"] + 10])
        # x of every vertex is the frame index: the offsets step by one frame per row
        np.testing.assert_allclose(np.diff(w["target"].numpy()[:, 0]), 1.0, atol=1e-5)
        assert w["fps"] == FPS and w["audio"].dtype == w["target"].dtype == torch.float32


def test_windows_without_audio_hold_the_same_targets_and_decode_no_audio(data, monkeypatch):
    """What the normalisation statistics read (``audio=False``): the same windows and targets in
    the same order, with empty audio, and the FLAC decoder never called."""
    import pseudo3d.training.data.shards as shards

    spec = _spec(data["a"])
    with_audio = list(ShardWindows([(str(data["a"]), 1.0)], spec, 10, fps=FPS, shuffle_buffer=4, seed=3))
    monkeypatch.setattr(shards, "decode_flac", lambda data: pytest.fail("audio was decoded"))
    targets_only = list(ShardWindows([(str(data["a"]), 1.0)], spec, 10, fps=FPS, shuffle_buffer=4, seed=3, audio=False))
    assert _ids(targets_only) == _ids(with_audio)
    for plain, full in zip(targets_only, with_audio):
        assert plain["audio"].shape == (0,)
        np.testing.assert_array_equal(plain["target"].numpy(), full["target"].numpy())
    with pytest.raises(ValueError, match="audio_shuffle needs the audio"):
        ShardWindows([(str(data["a"]), 1.0)], spec, 10, fps=FPS, audio=False, audio_shuffle=True)


def test_mesh_offsets_have_zero_mean_over_the_clip(data):
    spec = _spec(data["a"])
    whole = ShardWindows([(str(data["a"]), 1.0)], spec, 27, fps=FPS, stride_frames=1000, shuffle_buffer=1)
    clip_27 = [w for w in whole if w["start_frame"] == 0 and w["key"].startswith("a2-00000001")]
    assert len(clip_27) == 1  # the 27-frame clip in one window
    np.testing.assert_allclose(clip_27[0]["target"].numpy().mean(axis=0), 0.0, atol=1e-5)


def test_short_clips_are_skipped_and_counted(data):
    dataset = ShardWindows([(str(data["a"]), 1.0)], _spec(data["a"]), 10, fps=FPS, shuffle_buffer=1)
    windows = list(dataset)
    assert dataset.counts.short_clips == 1 and dataset.counts.clips == 7
    assert dataset.count() == dataset.counts and dataset.counts.windows == len(windows)
    assert sorted(_ids(windows)) == sorted(_all_windows(data["a"]))


def test_flame_targets_are_expression_then_jaw(data):
    spec = _spec(data["flame"])
    assert (spec.kind, spec.dim, spec.names[-3:]) == ("flame", 8, ("jaw_x", "jaw_y", "jaw_z"))
    sample = first_sample(str(data["flame"]))
    window = next(iter(ShardWindows([str(data["flame"])], spec, 12, fps=FPS, shuffle_buffer=1)))
    expected = np.concatenate([sample["flame_expression_smooth.npy"], sample["flame_jaw_pose_smooth.npy"]], 1)[:12]
    np.testing.assert_array_equal(window["target"].numpy(), expected)


def _loader_ids(dataset, workers: int) -> list[tuple[str, int]]:
    loader = DataLoader(dataset, batch_size=3, collate_fn=collate_windows, num_workers=workers,
                        worker_init_fn=worker_init_fn)
    return [(key, int(s)) for batch in loader for key, s in zip(batch["keys"], batch["start_frame"])]


@pytest.mark.parametrize("world_size, workers", [(1, 2), (2, 0), (2, 2)])
def test_ranks_and_workers_cover_every_window_once(data, world_size, workers):
    # 3 shards: (1, 2) and (2, 0) split by shard; (2, 2) has 4 readers, so it splits by clip
    spec = _spec(data["a"])
    seen = []
    for rank in range(world_size):
        dataset = ShardWindows([(str(data["a"]), 1.0)], spec, 10, fps=FPS, shuffle_buffer=4, seed=3,
                               rank=rank, world_size=world_size)
        seen += _loader_ids(dataset, workers)
    assert Counter(seen) == Counter(_all_windows(data["a"]))


def test_rank_comes_from_the_environment(data, monkeypatch):
    spec = _spec(data["b"])
    seen = []
    for rank in range(3):
        monkeypatch.setenv("PSEUDO3D_RANK", str(rank))
        monkeypatch.setenv("PSEUDO3D_WORLD_SIZE", "3")
        part = _ids(ShardWindows([(str(data["b"]), 1.0)], spec, 10, fps=FPS, stride_frames=10))
        assert part
        seen += part
    assert Counter(seen) == Counter(_all_windows(data["b"], 10, 10))
    monkeypatch.setenv("PSEUDO3D_RANK", "3")
    with pytest.raises(ValueError, match="rank 3"):
        list(ShardWindows([(str(data["b"]), 1.0)], spec, 10, fps=FPS))


def test_same_seed_same_batches_and_other_seeds_reorder(data):
    spec = _spec(data["a"])

    def run(seed: int, epoch: int = 0):
        dataset = ShardWindows([(str(data["a"]), 1.0), (str(data["b"]), 1.0)], spec, 10, fps=FPS,
                               shuffle_buffer=16, seed=seed, epoch=epoch)
        loader = DataLoader(dataset, batch_size=4, collate_fn=collate_windows, num_workers=2)
        return list(loader)

    first, again = run(0), run(0)
    assert [b["keys"] for b in first] == [b["keys"] for b in again]
    for x, y in zip(first, again):
        assert torch.equal(x["audio"], y["audio"]) and torch.equal(x["target"], y["target"])
        assert torch.equal(x["start_frame"], y["start_frame"])
    order = lambda batches: [(k, int(s)) for b in batches for k, s in zip(b["keys"], b["start_frame"])]  # noqa: E731
    for other in (run(1), run(0, epoch=1)):
        assert order(other) != order(first) and sorted(order(other)) == sorted(order(first))


def test_mixing_follows_the_weights():
    streams = [iter(["a"] * 20000), iter(["b"] * 20000)]
    drawn = Counter(mix(streams, [3.0, 1.0], np.random.default_rng(0), until="first"))
    assert drawn["b"] < 20000 and drawn["a"] == 20000
    assert drawn["a"] / drawn["b"] == pytest.approx(3.0, rel=0.05)
    everything = Counter(mix([iter(range(5)), iter(range(7))], [1.0, 9.0], np.random.default_rng(1)))
    assert sum(everything.values()) == 12


def test_dataset_mixing_honours_weights_roughly(data):
    spec = _spec(data["b"])
    dataset = ShardWindows([(str(data["b"]), 3.0), (str(data["c"]), 1.0)], spec, 10, fps=FPS, stride_frames=10,
                           shuffle_buffer=1, seed=5)
    keys = [w["key"][0] for w in dataset]
    assert Counter(keys) == {"b": 60, "c": 60}  # mix="all": every window once
    assert 35 <= Counter(keys[:60])["b"] <= 55   # 3:1 while both last (expected 45)
    first_only = [w["key"][0] for w in ShardWindows([(str(data["b"]), 3.0), (str(data["c"]), 1.0)], spec, 10,
                                                    fps=FPS, stride_frames=10, shuffle_buffer=1, seed=5, mix="first")]
    assert Counter(first_only)["b"] == 60 and 10 <= Counter(first_only)["c"] <= 30


def test_audio_shuffle_pairs_targets_with_other_clips_audio(data):
    spec = _spec(data["a"])
    sources = [(str(data["a"]), 1.0), (str(data["b"]), 1.0)]
    plain = list(ShardWindows(sources, spec, 10, fps=FPS, shuffle_buffer=8, seed=2))
    swapped = list(ShardWindows(sources, spec, 10, fps=FPS, shuffle_buffer=8, seed=2, audio_shuffle=True))
    again = list(ShardWindows(sources, spec, 10, fps=FPS, shuffle_buffer=8, seed=2, audio_shuffle=True))
    assert _ids(swapped) == _ids(plain) and _ids(again) == _ids(swapped)
    owner = {w["audio"].numpy().tobytes(): w["key"] for w in plain}
    donors = []
    for p, s, a in zip(plain, swapped, again):
        assert torch.equal(s["target"], p["target"]) and torch.equal(s["audio"], a["audio"])
        donor = owner[s["audio"].numpy().tobytes()]  # the audio is some other window's, unchanged
        assert donor != s["key"]
        donors.append(donor)
    assert len(set(donors)) > 3


def test_clip_at_another_frame_rate_is_an_error_naming_it(tmp_path, data):
    path = make_dataset(tmp_path, "odd", [[40]], fps=30.0)
    with pytest.raises(ValueError, match=r"shard-000000\.tar: sample 'odd0-00000000_000' is at 30 fps"):
        list(ShardWindows([str(path)], _spec(data["a"]), 10, fps=FPS))


def test_clip_with_too_little_audio_is_an_error(tmp_path, data):
    path = make_dataset(tmp_path, "mute", [[40]], audio_shortfall=2000)
    with pytest.raises(ValueError, match="audio and motion disagree"):
        list(ShardWindows([str(path)], _spec(data["a"]), 10, fps=FPS))


def test_sources_can_be_globs_tars_urls_and_skip_uncommitted(tmp_path, data):
    shards = resolve_shards(str(data["a"]))
    assert len(shards) == 3 and resolve_shards(str(data["a"] / "shards")) == shards
    assert resolve_shards(str(data["a"] / "shards" / "shard-00000[01].tar")) == shards[:2]
    assert resolve_shards(shards[1]) == (shards[1],)
    assert resolve_shards(f"file://{data['a']}") == shards
    spec = _spec(data["a"])
    assert sorted(_ids(ShardWindows([f"file://{shards[1]}"], spec, 10, fps=FPS))) == sorted(
        w for w in _all_windows(data["a"]) if w[0].startswith("a1-"))
    rng = np.random.default_rng(0)
    _write_tar(tmp_path / "partial" / "shards" / "shard-000000.tar", {"p0-0_000": _clip("p0-0_000", 30, rng)})
    _write_tar(tmp_path / "partial" / "shards" / "shard-000001.tar", {"p1-0_000": _clip("p1-0_000", 30, rng)},
               commit=False)
    assert [Path(p).name for p in resolve_shards(str(tmp_path / "partial"))] == ["shard-000000.tar"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        resolve_shards(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="weight"):
        weighted_datasets([(str(data["a"]), 0.0)])


def test_pickle_members_are_refused(tmp_path, data):
    rng = np.random.default_rng(0)
    members = dict(_clip("evil0-0_000", 30, rng))
    members["payload.pkl"] = b"cos\nsystem\n(S'true'\ntR."
    _write_tar(tmp_path / "evil" / "shards" / "shard-000000.tar", {"evil0-0_000": members})
    with pytest.raises(UnsafeShardError, match="payload.pkl"):
        list(ShardWindows([str(tmp_path / "evil")], _spec(data["a"]), 10, fps=FPS))


def test_bad_arguments_are_refused(data):
    spec = _spec(data["a"])
    with pytest.raises(ValueError, match="window_frames"):
        ShardWindows([str(data["a"])], spec, 0, fps=FPS)
    with pytest.raises(ValueError, match="mix"):
        ShardWindows([str(data["a"])], spec, 10, fps=FPS, mix="most")
    with pytest.raises(TypeError, match="TargetSpec"):
        ShardWindows([str(data["a"])], spec.to_dict(), 10, fps=FPS)
    flame = _spec(data["flame"])
    with pytest.raises(ValueError, match="missing array"):
        list(ShardWindows([str(data["a"])], flame, 10, fps=FPS))


@pytest.mark.parametrize("where", ["memory", "s3"])
def test_fsspec_urls_read_like_local_paths(data, where, request):
    """Shards behind a URL (fsspec's memory filesystem; a real S3-compatible server on 127.0.0.1)
    are found by listing and read as the local ones are."""
    from pseudo3d.storage import Storage

    root = f"memory://ds-a-{where}" if where == "memory" else f"{request.getfixturevalue('s3_bucket')}/ds-a"
    storage = Storage(root)
    for path in sorted((data["a"] / "shards").iterdir()):
        storage.write_bytes(f"shards/{path.name}", path.read_bytes())
    assert [Path(p).name for p in resolve_shards(root)] == [f"shard-00000{i}.tar" for i in range(3)]
    spec = _spec(data["a"])
    remote = list(ShardWindows([root], spec, 10, fps=FPS, shuffle_buffer=4, seed=1))
    local = list(ShardWindows([str(data["a"])], spec, 10, fps=FPS, shuffle_buffer=4, seed=1))
    assert len(remote) == len(local) > 0
    for far, near in zip(remote, local):
        assert (far["key"], far["start_frame"]) == (near["key"], near["start_frame"])
        assert torch.equal(far["audio"], near["audio"]) and torch.equal(far["target"], near["target"])
    assert first_sample(root)["__key__"] == first_sample(str(data["a"]))["__key__"]
    storage.delete_tree("")
