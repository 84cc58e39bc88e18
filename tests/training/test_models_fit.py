"""Both model kinds can learn a small audio-to-motion task: the smoothed audio energy at the
motion frame rate, which needs the right timing and a few hundred milliseconds of context."""

from __future__ import annotations

import pytest
import torch

from pseudo3d.training.models import ModelConfig, build_model

SR = 16000


def energy_task(seed: int, batch: int = 2, seconds: float = 2.0, fps: float = 25.0):
    """Noise under a random slowly varying envelope, and as target its log energy in 40 ms
    around each frame instant, standardised. Returns ``audio (B, S)``, ``target (B, n, 1)``,
    ``n_frames``, ``fps``."""
    generator = torch.Generator().manual_seed(seed)
    n_frames = int(seconds * fps)
    n_samples = round(n_frames * SR / fps)
    knots = torch.rand(batch, 1, int(seconds * 8) + 2, generator=generator)
    envelope = torch.nn.functional.interpolate(knots, size=n_samples, mode="linear", align_corners=True)[:, 0]
    audio = 0.3 * envelope.square() * torch.randn(batch, n_samples, generator=generator)
    half = 320
    cumulative = torch.nn.functional.pad(audio.square(), (half, half)).cumsum(dim=1)
    centres = (torch.arange(n_frames) * SR / fps).long()
    energy = (cumulative[:, centres + 2 * half] - cumulative[:, centres]) / (2 * half)
    target = torch.log(energy + 1e-4)
    return audio, ((target - target.mean()) / target.std())[..., None], n_frames, fps


@pytest.mark.parametrize("kind", ["hierarchical", "convrnn"])
def test_a_small_model_overfits_smoothed_energy(kind):
    torch.manual_seed(0)
    model = build_model(ModelConfig(output_dim=1, kind=kind, hidden=32, decoder_heads=2, dropout=0.0)).train()
    audio, target, n_frames, fps = energy_task(seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = torch.nn.functional.mse_loss(model(audio, n_frames, fps), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[0] > 0.5                                     # the fresh head predicts the mean
    assert losses[-1] < losses[0] / 50
    # It learnt energy from audio rather than memorising: unseen clips come out far better than
    # the mean (loss ~1).
    model.eval()
    with torch.no_grad():
        audio, target, n_frames, fps = energy_task(seed=99, batch=4)
        assert torch.nn.functional.mse_loss(model(audio, n_frames, fps), target) < 0.5
