import io
import tarfile

import numpy as np
import pytest

from pseudo3d.schemas.sample import decode_sample, encode_sample
from pseudo3d.schemas.shard_reader import UnsafeShardError, iter_raw_samples, iter_samples


def _sample():
    arrays = {"mesh_raw": np.arange(24, dtype=np.float32).reshape(2, 4, 3), "interpolated": np.array([False, True])}
    audio = np.sin(np.linspace(0, 20, 1280)).astype(np.float32) * 0.5
    return encode_sample(arrays, audio, 16000, {"fps": 25.0, "n_frames": 2}), arrays, audio


def test_roundtrip_and_determinism():
    members, arrays, audio = _sample()
    assert list(members) == sorted(members)
    assert members == _sample()[0]  # byte-identical on re-encode
    decoded = decode_sample(members)
    np.testing.assert_array_equal(decoded["mesh_raw.npy"], arrays["mesh_raw"])
    assert decoded["interpolated.npy"].dtype == bool
    restored, rate = decoded["audio.flac"]
    assert rate == 16000 and restored.shape == audio.shape
    np.testing.assert_allclose(restored, audio, atol=1 / 32767 + 1e-6)
    assert decoded["meta.json"] == {"fps": 25.0, "n_frames": 2}


def test_array_names_must_not_break_keys():
    with pytest.raises(ValueError, match="may not contain"):
        encode_sample({"a.b": np.zeros(1)}, np.zeros(10, np.float32), 16000, {})


def _tar_with(members: dict[str, bytes], path):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_reader_groups_members_by_key(tmp_path):
    members, _, _ = _sample()
    path = _tar_with({f"k1.{s}": d for s, d in members.items()} | {f"k2.{s}": d for s, d in members.items()},
                     tmp_path / "a.tar")
    samples = list(iter_samples(path))
    assert [s["__key__"] for s in samples] == ["k1", "k2"]
    assert samples[1]["mesh_raw.npy"].shape == (2, 4, 3)


@pytest.mark.parametrize("name", ["k.weights.pkl", "k.model.pth", "../k.meta.json", "/abs/k.meta.json", "nodot"])
def test_reader_refuses_unsafe_members(tmp_path, name):
    path = _tar_with({name: b"x"}, tmp_path / "bad.tar")
    with pytest.raises(UnsafeShardError):
        list(iter_samples(path))


def test_reader_refuses_members_over_its_size_limit(tmp_path):
    members, _, _ = _sample()
    path = _tar_with({f"k1.{s}": d for s, d in members.items()}, tmp_path / "a.tar")
    largest = max(len(data) for data in members.values())
    assert len(list(iter_raw_samples(path, max_member_bytes=largest))) == 1
    with pytest.raises(UnsafeShardError, match=f"over the reader's limit of {largest - 1} .max_member_bytes."):
        list(iter_raw_samples(path, max_member_bytes=largest - 1))


def test_reader_reads_only_the_wanted_samples_and_members(tmp_path):
    members, _, _ = _sample()
    path = _tar_with({f"{key}.{s}": d for key in ("k1", "k2", "k3") for s, d in members.items()}, tmp_path / "a.tar")
    read = dict(iter_raw_samples(path, ["meta.json"], keys=["k2", "k9"]))
    assert list(read) == ["k2"] and list(read["k2"]) == ["meta.json"]


def test_thumbnails_stay_jpeg_bytes():
    arrays = {"x": np.zeros(2, np.float32)}
    members = encode_sample(arrays, np.zeros(1280, np.float32), 16000, {}, thumbnail=b"\xff\xd8jpeg")
    assert decode_sample(members)["thumbnail.jpg"] == b"\xff\xd8jpeg"


def test_reader_refuses_links(tmp_path):
    path = tmp_path / "link.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("k.meta.json")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(UnsafeShardError, match="not a regular file"):
        list(iter_samples(path))


def test_npy_with_object_dtype_is_refused():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        decode_sample({"x.npy": buffer.getvalue()})
