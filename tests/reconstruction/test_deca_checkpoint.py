"""Safe loading of DECA checkpoints: every way a file can be wrong gives an AssetError naming it."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")  # torch is an optional extra (pseudo3d[train])

from pseudo3d.errors import AssetError  # noqa: E402
from pseudo3d.reconstruction.deca import DecaEncoder, load_deca_state_dict  # noqa: E402


@pytest.fixture(scope="module")
def state():
    """A random-weight coarse-encoder state dict (uncalibrated: only names and shapes matter)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return DecaEncoder().state_dict()


def _save(path, e_flame, **others):
    torch.save({"E_flame": e_flame, **others}, path)
    return path


def test_loads_e_flame_and_ignores_the_other_entries(state, tmp_path):
    path = _save(tmp_path / "deca_model.tar", state, E_detail={"layers.2.bias": torch.zeros(128)},
                 D_detail={"anything": torch.ones(2)}, epoch=7)
    loaded = load_deca_state_dict(path)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[key], state[key]) for key in state)


def test_missing_batch_norm_counters_are_filled(state, tmp_path):
    """Checkpoints saved by old PyTorch versions have no ``num_batches_tracked`` buffers."""
    old_style = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    loaded = load_deca_state_dict(_save(tmp_path / "old.tar", old_style))
    assert loaded.keys() == state.keys()
    assert loaded["encoder.bn1.num_batches_tracked"].item() == 0


def test_half_precision_weights_come_back_as_float32(state, tmp_path):
    half = {key: value.half() if value.is_floating_point() else value for key, value in state.items()}
    loaded = load_deca_state_dict(_save(tmp_path / "half.tar", half))
    assert loaded["layers.2.weight"].dtype == torch.float32
    assert loaded["encoder.bn1.num_batches_tracked"].dtype == torch.long


def test_missing_key(state, tmp_path):
    broken = {key: value for key, value in state.items() if key != "layers.2.bias"}
    path = _save(tmp_path / "missing.tar", broken)
    with pytest.raises(AssetError, match=r"missing keys: layers\.2\.bias") as raised:
        load_deca_state_dict(path)
    assert str(path) in str(raised.value)


def test_unexpected_key(state, tmp_path):
    path = _save(tmp_path / "extra.tar", {**state, "encoder.fc.weight": torch.zeros(1000, 2048)})
    with pytest.raises(AssetError, match=r"unexpected keys: encoder\.fc\.weight") as raised:
        load_deca_state_dict(path)
    assert str(path) in str(raised.value)


def test_wrong_shape(state, tmp_path):
    path = _save(tmp_path / "shape.tar", {**state, "layers.2.weight": torch.zeros(200, 1024)})
    with pytest.raises(AssetError, match=r"layers\.2\.weight \(200, 1024\) \(expected \(236, 1024\)\)") as raised:
        load_deca_state_dict(path)
    assert str(path) in str(raised.value)


def test_many_offending_keys_are_summarised(state, tmp_path):
    prefixed = {f"module.{key}": value for key, value in state.items()}
    with pytest.raises(AssetError, match=r"missing keys: .* and \d+ more; unexpected keys: module\."):
        load_deca_state_dict(_save(tmp_path / "prefixed.tar", prefixed))


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "deca_model.tar"
    path.write_text("<!DOCTYPE html><html>Google Drive - virus scan warning</html>")
    with pytest.raises(AssetError, match="not a PyTorch checkpoint") as raised:
        load_deca_state_dict(path)
    assert str(path) in str(raised.value)
    path.write_bytes(b"")
    with pytest.raises(AssetError, match="not a PyTorch checkpoint"):
        load_deca_state_dict(path)


def test_no_e_flame_entry(state, tmp_path):
    path = tmp_path / "detail_only.tar"
    torch.save({"E_detail": state}, path)
    with pytest.raises(AssetError, match=r"no 'E_flame' entry.*top-level entries: E_detail") as raised:
        load_deca_state_dict(path)
    assert str(path) in str(raised.value)
    torch.save(torch.zeros(3), path)
    with pytest.raises(AssetError, match="no 'E_flame' entry.*Tensor"):
        load_deca_state_dict(path)


def test_e_flame_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "odd.tar"
    torch.save({"E_flame": [torch.zeros(1)]}, path)
    with pytest.raises(AssetError, match="'E_flame' is a list, not a state dict"):
        load_deca_state_dict(path)
    torch.save({"E_flame": {"layers.2.bias": 3}}, path)
    with pytest.raises(AssetError, match=r"non-tensor entries \(layers\.2\.bias\)"):
        load_deca_state_dict(path)


def test_missing_file(tmp_path):
    with pytest.raises(AssetError, match="DECA checkpoint .* not found"):
        load_deca_state_dict(tmp_path / "nowhere" / "deca_model.tar")


class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``: a stand-in for code hidden in a checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_smuggled_code_is_refused_not_run(state, tmp_path):
    marker = tmp_path / "payload_ran"
    path = _save(tmp_path / "smuggled.tar", state, E_detail=_Payload(marker))
    with pytest.raises(AssetError, match="other than tensors, refused") as raised:
        load_deca_state_dict(path)
    assert str(path) in str(raised.value)
    assert "mkdir" in str(raised.value)  # the refused import is named
    assert not marker.exists()
    # The payload is live: an unrestricted unpickler would have run it.
    torch.load(path, weights_only=False)
    assert marker.is_dir()
