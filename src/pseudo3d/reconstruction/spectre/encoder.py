"""SPECTRE's encoders: DECA's coarse encoder (``E_flame``) plus a temporal expression encoder
(``E_expression``) whose expression and jaw outputs are added to DECA's.

Source: Filntisis et al., "SPECTRE: Visual Speech-Informed Perceptual 3D Facial Expression
Reconstruction from Videos", CVPRW 2023; reference implementation github.com/filby89/spectre
(``src/models/encoders.py`` ``PerceptualEncoder``, ``src/spectre.py`` ``SPECTRE.encode``, and
``demo.py``, which adds the expression encoder's outputs to DECA's and runs long videos in
overlapping chunks).

``E_expression``: :class:`~pseudo3d.reconstruction.spectre.mobilenet.MobileNetV2` features per
frame, averaged over the feature map (1280) → temporal Conv1d(1280 → 256, kernel 5, padding 2) →
BatchNorm1d → ReLU → Linear(256 → 53): 50 expression coefficients and 3 jaw axis-angle
components (x through a ReLU: the jaw barely opens backwards).

Input: face crops (…, 3, 224, 224) float RGB in [0, 1], cut by SPECTRE's convention (a square of
1.6 × the 68-landmark box's mean side, :mod:`pseudo3d.pipelines.crops`); no normalisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pseudo3d.files import file_sha256
from pseudo3d.reconstruction.deca.codes import CODE_SHAPES, split_codes
from pseudo3d.reconstruction.deca.encoder import IMAGE_SIZE, DecaEncoder
from pseudo3d.reconstruction.device import place_module
from pseudo3d.reconstruction.spectre.checkpoint import load_spectre_state_dicts
from pseudo3d.reconstruction.spectre.mobilenet import FEATURE_SIZE, MobileNetV2
from pseudo3d.reconstruction.torch_checkpoint import module_with_state

TEMPORAL_KERNEL = 5
"""Frames the temporal convolution sees: each output depends on its frame and two on each side."""
EDGE = TEMPORAL_KERNEL // 2
"""Frames of padding on each side of a sequence (SPECTRE's demo repeats the first and last frame)."""
HIDDEN_SIZE = 256
N_EXPRESSION = CODE_SHAPES["exp"][0]
N_JAW = 3


class ExpressionEncoder(nn.Module):
    """SPECTRE's ``E_expression``. Attribute names are the checkpoint's key prefixes (``encoder.``,
    ``temporal.0.``/``temporal.1.``, ``layers.0.``), so the official weights load with
    ``strict=True``."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = MobileNetV2()
        self.temporal = nn.Sequential(
            nn.Conv1d(FEATURE_SIZE, HIDDEN_SIZE, kernel_size=TEMPORAL_KERNEL, stride=1, padding=EDGE),
            nn.BatchNorm1d(HIDDEN_SIZE),
            nn.ReLU(),
        )
        self.layers = nn.Sequential(nn.Linear(HIDDEN_SIZE, N_EXPRESSION + N_JAW))

    def frame_features(self, images: torch.Tensor) -> torch.Tensor:
        """Crops (N, 3, 224, 224) in [0, 1] → pooled MobileNetV2 features (N, 1280); frames are
        independent, so any batching of frames gives the same features."""
        return self.encoder(images)

    def head(self, features: torch.Tensor, edges: str = "zeros") -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T, 1280) of B sequences → (expression (B, T, 50), jaw (B, T, 3)).

        ``edges``: ``"zeros"`` pads each sequence with zeros, as the module does on one batch
        (SPECTRE's ``encode``); ``"repeat"`` pads it with copies of its first and last frame, as
        SPECTRE's demo does for a whole video, which equals the demo's overlapping chunks exactly:
        every frame the demo finally keeps was computed from five real (or repeated edge) frames
        (the first chunk's two zero-padded padding frames are dropped with the padding).
        """
        sequence = features.transpose(1, 2)  # (B, 1280, T)
        conv, norm, relu = self.temporal
        assert isinstance(conv, nn.Conv1d)
        if edges == "repeat":
            padded = F.pad(sequence, (EDGE, EDGE), mode="replicate")
            hidden = F.conv1d(padded, conv.weight, conv.bias)
        elif edges == "zeros":
            hidden = conv(sequence)
        else:
            raise ValueError(f"edges must be 'zeros' or 'repeat', got {edges!r}")
        parameters = self.layers(relu(norm(hidden)).transpose(1, 2))
        jaw = torch.cat([F.relu(parameters[..., N_EXPRESSION:N_EXPRESSION + 1]),
                         parameters[..., N_EXPRESSION + 1:]], dim=-1)
        return parameters[..., :N_EXPRESSION], jaw

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops (B, T, 3, 224, 224) → (expression (B, T, 50), jaw (B, T, 3)), zero-padded in time:
        SPECTRE's ``PerceptualEncoder.forward`` on each of the B sequences."""
        batch, frames = video.shape[:2]
        features = self.frame_features(video.reshape(batch * frames, *video.shape[2:]))
        return self.head(features.reshape(batch, frames, -1))


class SpectreEncoder(nn.Module):
    """Crops → DECA's code dict with SPECTRE's expression and jaw.

    Build it with :meth:`from_checkpoint`; the bare constructor gives random weights (used to
    write synthetic checkpoints). Call it on a video batch (:meth:`forward`), or run a whole clip
    of any length with :meth:`encode_sequence` (SPECTRE's demo procedure).
    """

    def __init__(self) -> None:
        super().__init__()
        self.E_flame = DecaEncoder()
        self.E_expression = ExpressionEncoder()
        self.asset_hashes: dict[str, str] = {}
        """Asset name → SHA-256 of the file the weights came from (empty for random weights)."""

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None) -> "SpectreEncoder":
        """The encoders of ``spectre_model.tar`` (any layout :mod:`.checkpoint` reads), on
        ``device`` (None: CUDA when available, else CPU), in eval mode, without gradients; on
        CUDA in channels_last format. Raises :class:`~pseudo3d.errors.AssetError` naming the file
        when it cannot be used."""
        states = load_spectre_state_dicts(path)
        state = {f"{name}.{key}": value for name, entries in states.items() for key, value in entries.items()}
        encoder = module_with_state(cls, state)
        encoder.asset_hashes = {"spectre_checkpoint": file_sha256(path)}
        return place_module(encoder, device)

    def frame_codes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops (N, 3, 224, 224) in [0, 1] → (DECA's raw codes (N, 236), expression features
        (N, 1280)): the per-frame half of the work, for any batching of frames."""
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"SPECTRE crops must have shape (N, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                             f"got {tuple(images.shape)}")
        return self.E_flame.raw_codes(images), self.E_expression.frame_features(images)

    def sequence_codes(self, raw: torch.Tensor, features: torch.Tensor, edges: str = "repeat") -> dict[str, torch.Tensor]:
        """One or more sequences' per-frame outputs of :meth:`frame_codes`, ``raw`` (B, T, 236) and
        ``features`` (B, T, 1280) → float32 codes ``shape`` (B, T, 100), ``tex`` (B, T, 50),
        ``exp`` (B, T, 50), ``pose`` (B, T, 6), ``cam`` (B, T, 3), ``light`` (B, T, 9, 3), with
        SPECTRE's expression and jaw residuals added to DECA's. ``edges``: see
        :meth:`ExpressionEncoder.head`."""
        batch, frames = raw.shape[:2]
        codes = split_codes(raw.float().reshape(batch * frames, -1))
        codes = {name: value.reshape(batch, frames, *value.shape[1:]) for name, value in codes.items()}
        expression, jaw = self.E_expression.head(features, edges)
        codes["exp"] = codes["exp"] + expression.float()
        codes["pose"] = torch.cat([codes["pose"][..., :3], codes["pose"][..., 3:] + jaw.float()], dim=-1)
        return codes

    def forward(self, video: torch.Tensor) -> dict[str, torch.Tensor]:
        """Crops (B, T, 3, 224, 224) in [0, 1] → codes (B, T, …) as SPECTRE's ``encode`` on this
        batch followed by its demo's residual addition (the temporal convolution zero-padded at
        the batch's first and last frame)."""
        if video.ndim != 5:
            raise ValueError(f"a SPECTRE video batch must have shape (B, T, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                             f"got {tuple(video.shape)}")
        batch, frames = video.shape[:2]
        raw, features = self.frame_codes(video.reshape(batch * frames, *video.shape[2:]))
        return self.sequence_codes(raw.reshape(batch, frames, -1), features.reshape(batch, frames, -1), edges="zeros")

    def encode_sequence(self, frames: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
        """One clip's crops (T, 3, 224, 224), any T ≥ 1 → codes (T, …), one per frame, equal to
        SPECTRE's demo procedure (edges padded by repeating the first and last frame, chunks of
        50 frames overlapping by 4, the frames computed from padding dropped), in frame batches of
        ``batch_size``."""
        pieces = [self.frame_codes(frames[start:start + batch_size]) for start in range(0, len(frames), batch_size)]
        raw = torch.cat([raw for raw, _ in pieces])[None]
        features = torch.cat([features for _, features in pieces])[None]
        return {name: value[0] for name, value in self.sequence_codes(raw, features, edges="repeat").items()}
