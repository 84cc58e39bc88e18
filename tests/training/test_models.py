"""Model config, output shapes, heads, freezing and determinism for both model kinds."""

from __future__ import annotations

import json

import pytest
import torch

from pseudo3d.errors import ConfigError
from pseudo3d.training.models import ModelConfig, build_model, count_parameters

KINDS = ("hierarchical", "convrnn")


def small(kind: str, **changes) -> ModelConfig:
    fields = dict(output_dim=6, kind=kind, hidden=32, decoder_heads=2, dropout=0.0)
    fields.update(changes)
    return ModelConfig(**fields)


def noise(batch: int, n_samples: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(batch, n_samples, generator=torch.Generator().manual_seed(seed))


# --- config ---------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("kind", "lstm"), ("output_dim", 0), ("output_dim", 2.5), ("sample_rate", 16001), ("hidden", 33),
    ("fine_kernel", 4), ("mid_stride", 0), ("mid_dilations", ()), ("long_dilations", [1, 0]),
    ("conv_layers", 0), ("decoder_layers", 0), ("decoder_heads", 5), ("decoder_context_s", 0.0),
    ("dropout", 1.0), ("dropout", "high"), ("output_activation", "tanh"), ("n_mels", True),
])
def test_config_errors_name_the_field(field, value):
    fields = {**small("hierarchical").to_dict(), field: value}
    with pytest.raises(ConfigError, match=field):
        ModelConfig(**fields)


def test_config_json_round_trip_and_unknown_keys():
    config = ModelConfig(output_dim=52, kind="convrnn", long_dilations=(1, 3, 9), output_activation="sigmoid")
    text = json.dumps(config.to_dict())
    again = ModelConfig.from_dict(json.loads(text))
    assert again == config and again.long_dilations == (1, 3, 9)
    with pytest.raises(ConfigError, match="hiden"):
        ModelConfig.from_dict({**config.to_dict(), "hiden": 64})
    with pytest.raises(ConfigError, match="output_dim"):
        ModelConfig.from_dict({"kind": "convrnn"})


def test_default_sizes_are_small():
    for kind, low, high in (("hierarchical", 500_000, 1_500_000), ("convrnn", 200_000, 1_000_000)):
        model = build_model(ModelConfig(output_dim=53, kind=kind))
        assert low < count_parameters(model) < high


# --- shapes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fps", [25.0, 30.0, 29.97, 60.0])
def test_output_shape_for_any_frame_rate_and_audio_length(kind, fps):
    model = build_model(small(kind)).eval()
    for n_frames in (1, 9, 50):
        exact = round(n_frames * 16000 / fps)
        for n_samples in (exact - 1, exact, exact + 1, exact // 2, 0):
            out = model(noise(2, max(n_samples, 0)), n_frames, fps)
            assert out.shape == (2, n_frames, 6)
            assert torch.isfinite(out).all()


def test_bad_calls_are_refused():
    model = build_model(small("convrnn"))
    with pytest.raises(ValueError, match="audio"):
        model(torch.zeros(16000), 25, 25.0)
    with pytest.raises(ValueError, match="n_frames"):
        model(torch.zeros(1, 16000), 0, 25.0)
    with pytest.raises(ValueError, match="fps"):
        model(torch.zeros(1, 16000), 25, 0.0)


# --- heads --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_fresh_head_predicts_about_its_initial_output(kind):
    model = build_model(small(kind)).eval()
    assert model(noise(2, 16000), 25, 25.0).abs().max() < 0.05
    sigmoid = build_model(small(kind, output_activation="sigmoid")).eval()
    out = sigmoid(noise(2, 16000), 25, 25.0)
    assert ((out - 0.5).abs() < 0.02).all()
    mean = torch.linspace(0.05, 0.9, 6)
    sigmoid.replace_head(6, initial_output=mean)
    assert torch.allclose(sigmoid(noise(1, 16000), 25, 25.0)[0], mean.expand(25, 6), atol=0.02)


@pytest.mark.parametrize("kind", KINDS)
def test_replace_head_changes_output_dim_and_keeps_encoder_and_decoder(kind):
    torch.manual_seed(0)
    model = build_model(small(kind))
    kept = {name: value.clone() for name, value in model.state_dict().items() if not name.startswith("head.")}
    new_head = model.replace_head(52)
    assert model.head is new_head and model.output_dim == 52 and model.config.output_dim == 52
    assert model(noise(1, 6400), 10, 25.0).shape == (1, 10, 52)
    state = model.state_dict()
    for name, value in kept.items():
        assert torch.equal(state[name], value), name
    with pytest.raises(ValueError, match="initial_output"):
        model.replace_head(3, initial_output=torch.zeros(4))


@pytest.mark.parametrize("kind", KINDS)
def test_frozen_encoder_stays_put_in_train_mode(kind):
    torch.manual_seed(0)
    model = build_model(small(kind, dropout=0.1)).train()
    for parameter in model.encoder.parameters():
        parameter.requires_grad_(False)
    encoder_before = [p.clone() for p in model.encoder.parameters()]
    head_before = model.head.linear.weight.clone()
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(3):
        loss = (model(noise(2, 16000, seed=step), 25, 25.0) - 1.0).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, model.encoder.parameters()))
    assert not torch.equal(head_before, model.head.linear.weight)
    assert count_parameters(model, trainable_only=True) < count_parameters(model)


# --- determinism ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_model_and_outputs(kind):
    audio = noise(2, 12000)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(small(kind)).eval()
        outputs.append(model(audio, 20, 30.0))
    assert torch.equal(outputs[0], outputs[1])
    assert torch.equal(model(audio, 20, 30.0), outputs[1])
    torch.manual_seed(124)
    assert not torch.equal(build_model(small(kind)).eval()(audio, 20, 30.0), outputs[0])
