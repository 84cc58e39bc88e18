"""SyncNet (LSE-D / LSE-C): crops, MFCCs, scoring and the network, each checked against an
independent computation (the reference's own formulas, FFmpeg, torch) rather than against itself.

Equivalence with joonson/syncnet_python's code itself (same weights, same inputs, embeddings
equal) was measured outside the test suite, since the reference is not a dependency: see
docs/qa.md.
"""

from __future__ import annotations

import math

import av
import cv2
import numpy as np
import pytest

from pseudo3d.qa.syncnet_scoring import (CROP_SIZE, PAD_LEVEL, audio_to_pcm16, crop_for_syncnet, crop_track,
                                         crop_windows, landmark_face_boxes, n_sync_windows, offset_distances,
                                         sync_figures, syncnet_mfcc)

try:
    import torch
except ImportError:  # torch is an optional extra (pseudo3d[train])
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="needs PyTorch (pip install 'pseudo3d[train]')")
try:
    import python_speech_features  # noqa: F401
except ImportError:  # part of the same extra
    python_speech_features = None
needs_mfcc = pytest.mark.skipif(python_speech_features is None,
                                reason="needs python_speech_features (pip install 'pseudo3d[train]')")


# --- Crops -------------------------------------------------------------------------------------

def _reference_crop(image_bgr: np.ndarray, s: float, x: float, y: float, cs: float = 0.4) -> np.ndarray:
    """run_pipeline.py's crop_video for one frame, given the smoothed half-size and centre."""
    bsi = int(s * (1 + 2 * cs))
    frame = np.pad(image_bgr, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = y + bsi, x + bsi
    face = frame[int(my - s):int(my + s * (1 + 2 * cs)), int(mx - s * (1 + cs)):int(mx + s * (1 + cs))]
    return cv2.resize(face, (224, 224))


def test_crop_window_of_a_known_box():
    # box 100 wide, 120 high: s = 60, centre (150, 110); rows 110 - 60 .. 110 + 60·1.8 = 50 .. 218,
    # columns 150 - 60·1.4 .. 150 + 60·1.4 = 66 .. 234: a 168-pixel square (2.8·s).
    boxes = np.tile([100.0, 50.0, 200.0, 170.0], (20, 1))
    assert crop_windows(boxes).tolist() == [[66, 50, 234, 218]] * 20
    assert crop_windows(boxes, crop_scale=0.0).tolist() == [[90, 50, 210, 170]] * 20  # the bare square


def test_crops_equal_the_reference_slicing_and_median_filter():
    """Away from the track's first and last 6 frames (where the reference's median filter pads
    with zeros), every crop equals run_pipeline.py's, pixel for pixel."""
    from scipy.signal import medfilt

    rng = np.random.default_rng(3)
    n = 30
    frames = rng.integers(0, 256, (n, 240, 320, 3), dtype=np.uint8)
    centre = np.array([160.0, 120.0]) + np.cumsum(rng.normal(0, 2.0, (n, 2)), axis=0)
    size = 90 + np.cumsum(rng.normal(0, 1.5, n)) + rng.normal(0, 3, n) * (rng.random(n) < 0.2)
    aspect = rng.uniform(0.8, 1.2, n)
    boxes = np.stack([centre[:, 0] - size * aspect / 2, centre[:, 1] - size / 2,
                      centre[:, 0] + size * aspect / 2, centre[:, 1] + size / 2], axis=1)
    ours = crop_track(frames, boxes)
    s = medfilt(np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2, 13)
    y = medfilt((boxes[:, 1] + boxes[:, 3]) / 2, 13)
    x = medfilt((boxes[:, 0] + boxes[:, 2]) / 2, 13)
    assert ours.shape == (n, CROP_SIZE, CROP_SIZE, 3) and ours.dtype == np.uint8
    for t in range(6, n - 6):
        reference = _reference_crop(np.ascontiguousarray(frames[t, :, :, ::-1]), s[t], x[t], y[t])
        np.testing.assert_array_equal(ours[t], reference, err_msg=f"frame {t}")


def test_crop_is_bgr_and_streams_frame_by_frame():
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[..., 0] = 200  # pure red in RGB
    windows = crop_windows(np.tile([50.0, 50.0, 150.0, 150.0], (3, 1)))  # whole track first ...
    assert windows[1].tolist() == [30, 50, 170, 190]
    crop = crop_for_syncnet(frame, windows[1])  # ... then one frame at a time
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    assert (crop[..., 2] == 200).all() and (crop[..., :2] == 0).all()  # red is the last channel: BGR


def test_median_filter_ignores_a_one_frame_jump():
    boxes = np.tile([100.0, 100.0, 200.0, 200.0], (25, 1))
    boxes[12] = [300.0, 300.0, 500.0, 500.0]
    windows = crop_windows(boxes)
    assert (windows == windows[0]).all()


def test_window_outside_the_image_is_padded_grey_and_short_tracks_work():
    frame = np.full((100, 100, 3), 255, np.uint8)
    boxes = np.tile([-20.0, -20.0, 20.0, 20.0], (3, 1))  # a 3-frame track centred on the corner
    window = crop_windows(boxes)[0]
    assert window.tolist() == [-28, -20, 28, 36]
    crop = crop_for_syncnet(frame, window)
    # the image covers columns 0..27 of 56 and rows 0..35 of 56 of the window: the bottom-right
    # part of the crop is white, the top-left grey
    assert (crop[:60, :90] == PAD_LEVEL).all()
    assert (crop[150:, 130:] == 255).all()


def test_missing_boxes_are_interpolated():
    boxes = np.tile([100.0, 100.0, 200.0, 200.0], (20, 1)) + np.arange(20)[:, None]
    holed = boxes.copy()
    holed[5:8] = np.nan
    np.testing.assert_array_equal(crop_windows(holed), crop_windows(boxes))
    with pytest.raises(ValueError, match="none of the 4 face boxes is finite"):
        crop_windows(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match=r"shape \(T, 4\)"):
        crop_windows(np.zeros((4, 3)))


def _face_oval():
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    return np.array(sorted({i for edge in FACEMESH_FACE_OVAL for i in edge}))


def _ellipse_landmarks(centre_x, centre_y, width, height):
    """(478, 2) landmarks: the face oval on an ellipse, every other point inside it."""
    landmarks = np.tile([centre_x, centre_y], (478, 1)).astype(np.float64)
    oval = _face_oval()
    angle = np.linspace(0, 2 * np.pi, len(oval), endpoint=False)
    landmarks[oval] = np.stack([centre_x + width / 2 * np.sin(angle), centre_y - height / 2 * np.cos(angle)], 1)
    return landmarks


def test_landmark_box_is_a_square_on_the_chin():
    upright = _ellipse_landmarks(300.0, 200.0, width=100.0, height=150.0)  # height > 1.2 × width
    pitched = _ellipse_landmarks(300.0, 200.0, width=100.0, height=90.0)   # looks short: width rules
    lost = np.full((478, 2), np.nan)
    boxes = landmark_face_boxes(np.stack([upright, pitched, lost]))
    # side 1.1 × 150 = 165, bottom on the chin at y = 275; then 1.1 × 1.2 × 100 = 132, chin 245
    np.testing.assert_allclose(boxes[0], [300 - 82.5, 275 - 165, 300 + 82.5, 275], atol=1e-9)
    np.testing.assert_allclose(boxes[1], [300 - 66, 245 - 132, 300 + 66, 245], atol=1e-9)
    assert np.isnan(boxes[2]).all()
    # with 3-D landmarks (x, y, z) the z column is ignored
    with_z = np.concatenate([upright, np.full((478, 1), 7.0)], axis=1)
    np.testing.assert_array_equal(landmark_face_boxes(with_z[None]), boxes[:1])


# --- Audio -------------------------------------------------------------------------------------

def test_pcm16_conversion_is_ffmpegs():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-1.2, 1.2, 997),
                             np.array([0.5, 1.5, 2.5, -0.5, -1.5]) / 32768,  # rounding ties
                             [1.0, -1.0, 0.0]]).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(values[None], format="flt", layout="mono")
    frame.sample_rate = 16000
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    ffmpeg = np.concatenate([out.to_ndarray()[0] for out in [*resampler.resample(frame), *resampler.resample(None)]])
    np.testing.assert_array_equal(audio_to_pcm16(values), ffmpeg)
    # 16-bit audio that FFmpeg decoded to float (÷ 32768) comes back unchanged
    pcm = rng.integers(-32768, 32768, 1000).astype(np.int16)
    np.testing.assert_array_equal(audio_to_pcm16((pcm / 32768).astype(np.float32)), pcm)
    with pytest.raises(ValueError, match="non-finite"):
        audio_to_pcm16(np.array([0.0, np.nan], np.float32))


@needs_mfcc
def test_mfcc_shape_rate_and_energy_coefficient():
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.standard_normal(40000)).astype(np.float32)  # 2.5 s
    mfcc = syncnet_mfcc(audio)
    assert mfcc.shape == (13, 1 + math.ceil((40000 - 400) / 160)) == (13, 249)  # 100 per second
    assert mfcc.dtype == np.float32
    assert syncnet_mfcc(audio[:16000]).shape == (13, 99)
    # coefficient 0 is the log energy of the pre-emphasised 16-bit frame (25 ms every 10 ms)
    pcm = audio_to_pcm16(audio).astype(np.float64)
    emphasised = np.append(pcm[0], pcm[1:] - 0.97 * pcm[:-1])
    for step in (0, 100, 248):
        frame = np.zeros(400)
        chunk = emphasised[160 * step:160 * step + 400]
        frame[:len(chunk)] = chunk
        energy = np.sum(np.abs(np.fft.rfft(frame, 512)) ** 2) / 512
        assert mfcc[0, step] == pytest.approx(np.log(energy), rel=1e-5)
    assert syncnet_mfcc(np.zeros(0, np.float32)).shape == (13, 0)
    with pytest.raises(ValueError, match="16000 Hz"):
        syncnet_mfcc(audio, sample_rate=48000)


# --- Windows and figures -----------------------------------------------------------------------

def test_window_count_is_the_references():
    assert n_sync_windows(174, 111360) == 169        # 6.96 s at 25 fps: min(174, 174) - 5
    assert n_sync_windows(174, 100000) == 151        # audio shorter: floor(100000 / 640) = 156
    assert n_sync_windows(6, 10 * 640) == 1
    assert n_sync_windows(5, 10 * 640) == 0          # the last window that fits is left out
    assert n_sync_windows(0, 0) == 0


@needs_torch
def test_offset_distances_are_the_references_calc_pdist():
    rng = np.random.default_rng(2)
    lip, audio = rng.normal(size=(12, 16)), rng.normal(size=(12, 16))
    vshift = 3
    # calc_pdist of SyncNetInstance.py, in torch
    feat1, feat2 = torch.from_numpy(lip), torch.from_numpy(audio)
    padded = torch.nn.functional.pad(feat2, (0, 0, vshift, vshift))
    expected = torch.stack([torch.nn.functional.pairwise_distance(feat1[[i], :].repeat(2 * vshift + 1, 1),
                                                                  padded[i:i + 2 * vshift + 1, :])
                            for i in range(len(feat1))])
    np.testing.assert_allclose(offset_distances(lip, audio, vshift), expected.numpy(), rtol=1e-12)


def test_figures_of_a_constructed_distance_pattern():
    mean = np.array([9.0, 8.5, 8.0, 6.0, 8.0, 8.2, 2.0])  # offsets -3..3; smallest at +3
    distances = mean + np.array([[0.5], [-0.5]]) * np.ones(7)  # two windows averaging to `mean`
    figures = sync_figures(distances)
    assert figures["lse_d"] == pytest.approx(2.0)
    assert figures["lse_c"] == pytest.approx(8.0 - 2.0)  # median of the 7 means is 8.0
    # column j compares lip i with audio i + j - 3: the audio that matches comes 3 frames later
    assert figures["syncnet_offset_frames"] == 3.0
    assert sync_figures(distances[:, ::-1])["syncnet_offset_frames"] == -3.0
    assert all(math.isnan(value) for value in sync_figures(np.zeros((0, 31))).values())
    with pytest.raises(ValueError, match="2·vshift"):
        sync_figures(np.zeros((3, 30)))


# --- The network and its checkpoint --------------------------------------------------------------

def test_without_torch_the_crops_work_and_the_network_names_the_extra():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import pseudo3d.qa.syncnet_scoring\n"
            "try:\n    import pseudo3d.qa.syncnet\nexcept ImportError as error:\n    print(error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'pseudo3d[train]'" in result.stdout



@pytest.fixture(scope="module")
def random_model():
    """A randomly initialised SyncNet in eval mode (uncalibrated: only names and shapes matter)."""
    from pseudo3d.qa.syncnet import SyncNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SyncNet().eval()


@pytest.fixture(scope="module")
def random_state(random_model):
    return random_model.state_dict()


@pytest.fixture(scope="module")
def synthetic_checkpoint(tmp_path_factory):
    from pseudo3d.testing.syncnet_assets import write_synthetic_syncnet_checkpoint

    return write_synthetic_syncnet_checkpoint(tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model", seed=0)


def _mfcc_batch(n=3):
    generator = torch.Generator().manual_seed(5)
    return torch.randn(n, 1, 13, 20, generator=generator) * 3 + 8


@needs_torch
def test_forward_shapes_and_input_checks():
    from pseudo3d.qa.syncnet import SyncNet

    model = SyncNet().eval()
    with torch.inference_mode():
        assert model.forward_lip(torch.rand(2, 3, 5, 224, 224) * 255).shape == (2, 1024)
        assert model.forward_aud(_mfcc_batch(3)).shape == (3, 1024)
        with pytest.raises(ValueError, match=r"\(B, 3, 5, 224, 224\), got \(2, 3, 4, 224, 224\)"):
            model.forward_lip(torch.zeros(2, 3, 4, 224, 224))
        with pytest.raises(ValueError, match="float BGR"):
            model.forward_lip(torch.zeros(1, 3, 5, 224, 224, dtype=torch.uint8))
        with pytest.raises(ValueError, match=r"\(B, 1, 13, 20\)"):
            model.forward_aud(torch.zeros(1, 13, 20))


@needs_torch
def test_checkpoint_keys_are_the_reference_layout(random_state):
    """The names the released syncnet_v2.model uses: SyncNetModel.py's nn.Sequential indices
    (convolution and batch norm at 0/1, 4/5, 8/9, 11/12, 14/15, 18/19 in both streams; Linear,
    BatchNorm1d, Linear at 0, 1, 3 in both heads)."""
    batch_norm = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = set()
    for stream in ("netcnnaud", "netcnnlip"):
        for conv in (0, 4, 8, 11, 14, 18):
            expected |= {f"{stream}.{conv}.{name}" for name in ("weight", "bias")}
            expected |= {f"{stream}.{conv + 1}.{name}" for name in batch_norm}
    for head in ("netfcaud", "netfclip"):
        expected |= {f"{head}.{index}.{name}" for index in (0, 3) for name in ("weight", "bias")}
        expected |= {f"{head}.1.{name}" for name in batch_norm}
    assert set(random_state) == expected and len(expected) == 102
    assert tuple(random_state["netcnnlip.0.weight"].shape) == (96, 3, 5, 7, 7)
    assert tuple(random_state["netcnnaud.18.weight"].shape) == (512, 256, 5, 4)
    assert tuple(random_state["netfclip.3.weight"].shape) == (1024, 512)
    assert sum(value.numel() for value in random_state.values()) == 13_640_270


def _same_audio_output(model_a, model_b) -> bool:
    with torch.inference_mode():
        return torch.equal(model_a.forward_aud(_mfcc_batch()), model_b.forward_aud(_mfcc_batch()))


@needs_torch
@pytest.mark.parametrize("layout", ["plain", "nested", "instance_prefix", "data_parallel", "legacy_format",
                                    "old_torch", "half"])
def test_accepted_layouts_load(random_model, random_state, tmp_path, layout):
    from pseudo3d.qa.syncnet import SyncNet

    state, options = dict(random_state), {}
    if layout == "nested":
        state = {"state_dict": state, "epoch": 12}
    elif layout == "instance_prefix":  # SyncNetInstance.state_dict(): the network is its __S__
        state = {f"__S__.{key}": value for key, value in state.items()}
    elif layout == "data_parallel":
        state = {f"module.{key}": value for key, value in state.items()}
    elif layout == "legacy_format":  # files written before PyTorch 1.6
        options = {"_use_new_zipfile_serialization": False}
    elif layout == "old_torch":  # before PyTorch 0.4.1: no batch-norm step counters
        state = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    elif layout == "half":
        state = {key: value.half() if value.is_floating_point() else value for key, value in state.items()}
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path, **options)
    model = SyncNet.from_checkpoint(path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.netfcaud[3].weight.dtype == torch.float32
    assert len(model.asset_hashes["syncnet_checkpoint"]) == 64
    if layout == "half":
        rounded = {key: value.half().float() if value.is_floating_point() else value
                   for key, value in random_state.items()}
        assert all(torch.equal(model.state_dict()[key], rounded[key]) for key in rounded)
    else:
        assert _same_audio_output(model, random_model)


class _Payload:
    """Unpickling this calls os.mkdir(marker): code a checkpoint must never get to run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.mkdir, (self.marker,))


@needs_torch
def test_bad_checkpoints_raise_asset_errors_naming_the_file(random_state, tmp_path):
    from pseudo3d.errors import AssetError
    from pseudo3d.qa.syncnet import SyncNet

    def refused(state, pattern, name):
        path = tmp_path / name
        torch.save(state, path)
        with pytest.raises(AssetError, match=pattern) as raised:
            SyncNet.from_checkpoint(path)
        assert str(path) in str(raised.value)

    without = {key: value for key, value in random_state.items() if key != "netfclip.3.bias"}
    refused(without, r"missing keys: netfclip\.3\.bias", "missing.model")
    refused({**random_state, "netfclip.4.weight": torch.zeros(3)}, r"unexpected keys: netfclip\.4\.weight",
            "extra.model")
    refused({**random_state, "netfcaud.3.weight": torch.zeros(512, 512)},
            r"wrong shapes: netfcaud\.3\.weight \(512, 512\) \(expected \(1024, 512\)\)", "shape.model")
    refused({f"net.{key}": value for key, value in random_state.items()},
            r"missing keys: netcnnaud\.0\.bias, .* and \d+ more; unexpected keys: net\.", "renamed.model")
    refused({**random_state, "netfclip.3.bias": [1.0, 2.0]}, r"non-tensor entries \(netfclip\.3\.bias\)", "list.model")
    refused([1, 2, 3], "holds a list, not a state dict", "list_top.model")

    marker = tmp_path / "payload_ran"
    smuggled = tmp_path / "smuggled.model"
    torch.save({**random_state, "netfclip.3.bias": _Payload(marker)}, smuggled)
    with pytest.raises(AssetError, match=r"other than tensors, refused for safety.*mkdir") as raised:
        SyncNet.from_checkpoint(smuggled)
    assert str(smuggled) in str(raised.value)
    assert not marker.exists()
    torch.load(smuggled, weights_only=False)  # the payload is live: an unrestricted load runs it
    assert marker.is_dir()
    html = tmp_path / "syncnet_v2.model"
    html.write_text("<html>404 Not Found</html>")
    with pytest.raises(AssetError, match="is not a PyTorch checkpoint.*syncnet_v2.model"):
        SyncNet.from_checkpoint(html)
    with pytest.raises(AssetError, match="SyncNet checkpoint .* not found"):
        SyncNet.from_checkpoint(tmp_path / "absent.model")
    with pytest.raises(ValueError, match="device must be"):
        SyncNet.from_checkpoint(html, device="tpu:x")


@needs_torch
@needs_mfcc
def test_synthetic_checkpoint_has_the_released_layout(synthetic_checkpoint, random_state):
    from pseudo3d.qa.syncnet import SyncNet

    state = torch.load(synthetic_checkpoint, map_location="cpu", weights_only=True)
    assert {key: tuple(value.shape) for key, value in state.items()} == \
        {key: tuple(value.shape) for key, value in random_state.items()}
    # calibrated statistics and drawn affine parameters, not the defaults (0, 1)
    for layer in ("netcnnlip.1", "netcnnaud.15", "netfclip.1"):
        assert not torch.equal(state[f"{layer}.running_var"], torch.ones_like(state[f"{layer}.running_var"]))
        assert not torch.equal(state[f"{layer}.weight"], torch.ones_like(state[f"{layer}.weight"]))
    assert SyncNet.from_checkpoint(synthetic_checkpoint).asset_hashes


def _reference_evaluate(model, crops_bgr, audio, vshift, batch_size):
    """SyncNetInstance.evaluate's arithmetic, written out as it is there: the whole clip as one
    (1, 3, T, 224, 224) float tensor sliced per window, the MFCC tensor sliced at vframe·4."""
    im = np.transpose(np.expand_dims(np.stack(list(crops_bgr), axis=3), 0), (0, 3, 4, 1, 2))
    imtv = torch.from_numpy(im.astype(float)).float()
    cct = torch.from_numpy(syncnet_mfcc(audio)[None, None].astype(float)).float()
    lastframe = min(len(crops_bgr), math.floor(len(audio) / 640)) - 5
    im_feat, cc_feat = [], []
    for i in range(0, lastframe, batch_size):
        frames = range(i, min(lastframe, i + batch_size))
        im_feat.append(model.forward_lip(torch.cat([imtv[:, :, v:v + 5] for v in frames], 0)))
        cc_feat.append(model.forward_aud(torch.cat([cct[:, :, :, v * 4:v * 4 + 20] for v in frames], 0)))
    im_feat, cc_feat = torch.cat(im_feat), torch.cat(cc_feat)
    padded = torch.nn.functional.pad(cc_feat, (0, 0, vshift, vshift))
    dists = [torch.nn.functional.pairwise_distance(im_feat[[i]].repeat(2 * vshift + 1, 1), padded[i:i + 2 * vshift + 1])
             for i in range(len(im_feat))]
    mdist = torch.mean(torch.stack(dists, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    return int(vshift - minidx), float(minval), float(torch.median(mdist) - minval)


@needs_torch
@needs_mfcc
def test_scores_equal_the_references_evaluate_arithmetic(synthetic_checkpoint):
    from pseudo3d.qa.syncnet import SyncNet, syncnet_scores

    model = SyncNet.from_checkpoint(synthetic_checkpoint)
    rng = np.random.default_rng(4)
    crops = rng.integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)  # 7 windows
    audio = (0.2 * rng.standard_normal(12 * 640 + 100)).astype(np.float32)
    with torch.inference_mode():
        offset, min_dist, conf = _reference_evaluate(model, crops, audio, vshift=3, batch_size=3)
    figures = syncnet_scores(model, crops, audio, vshift=3, batch_size=4)
    assert figures["syncnet_offset_frames"] == -offset  # pseudo3d's sign: positive = audio lags
    assert figures["lse_d"] == pytest.approx(min_dist, rel=1e-5)
    assert figures["lse_c"] == pytest.approx(conf, abs=1e-4)
    short = syncnet_scores(model, crops[:5], audio)
    assert all(math.isnan(value) for value in short.values())
    with pytest.raises(ValueError, match="25 fps"):
        syncnet_scores(model, crops, audio, fps=30.0)
    with pytest.raises(ValueError, match=r"uint8 array of shape \(T, 224, 224, 3\)"):
        syncnet_scores(model, crops.astype(np.float32), audio)


class _BrightnessLoudnessTwin(torch.nn.Module if torch is not None else object):
    """A stand-in for a perfectly trained SyncNet: both streams embed a window as the
    standardised 5-step curve of the same quantity, the frames' mean brightness and the audio's
    log energy (MFCC 0, averaged over each frame's 4 steps), so embeddings match exactly when the
    picture and the sound are aligned. It tests the windowing and the sign independently of
    trained weights."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    @staticmethod
    def _standardise(curve):
        curve = curve - curve.mean(dim=1, keepdim=True)
        return curve / curve.norm(dim=1, keepdim=True).clamp_min(1e-6)

    def forward_lip(self, video):
        return self._standardise(video.mean(dim=(1, 3, 4)))

    def forward_aud(self, mfcc):
        return self._standardise(mfcc[:, 0, 0].reshape(-1, 5, 4).mean(dim=2))


@needs_torch
@needs_mfcc
@pytest.mark.parametrize("delay_frames", [-4, 0, 3])
def test_audio_delay_moves_the_offset_by_as_many_frames(delay_frames):
    from pseudo3d.qa.syncnet import syncnet_scores

    rng = np.random.default_rng(6)
    n_frames = 80
    level = rng.standard_normal(n_frames + 20)  # one random curve drives picture and sound
    crops = np.empty((n_frames, 224, 224, 3), np.uint8)
    crops[:] = np.clip(128 + 30 * level[10:10 + n_frames], 0, 255).astype(np.uint8)[:, None, None, None]
    # frame t's audio is loud by level[t - delay]: the sound of frame t comes `delay` frames later
    loudness = np.exp(0.5 * level[10 - delay_frames:10 - delay_frames + n_frames])
    audio = (0.02 * np.repeat(loudness, 640) * rng.standard_normal(n_frames * 640)).astype(np.float32)
    figures = syncnet_scores(_BrightnessLoudnessTwin(), crops, audio, vshift=6)
    assert figures["syncnet_offset_frames"] == delay_frames
    assert figures["lse_c"] > 0.5


@needs_torch
@needs_mfcc
@pytest.mark.gpu
@pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_embeddings_match_cpu(synthetic_checkpoint):
    from pseudo3d.qa.syncnet import SyncNet, syncnet_embeddings

    rng = np.random.default_rng(7)
    crops = rng.integers(0, 256, (30, 224, 224, 3), dtype=np.uint8)
    audio = (0.2 * rng.standard_normal(30 * 640)).astype(np.float32)
    cpu = syncnet_embeddings(SyncNet.from_checkpoint(synthetic_checkpoint), crops, audio)
    cuda = syncnet_embeddings(SyncNet.from_checkpoint(synthetic_checkpoint, device="cuda"), crops, audio, batch_size=64)
    for a, b in zip(cpu, cuda):
        np.testing.assert_allclose(b, a, rtol=0, atol=5e-3 * float(np.abs(a).max()))  # TF32 convolutions
