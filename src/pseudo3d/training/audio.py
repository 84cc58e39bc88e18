"""Log-mel features for the speech-to-motion models.

Pure functions (:func:`hz_to_mel`, :func:`mel_to_hz`, :func:`mel_filterbank`) are apart from the
module (:class:`LogMel`) that holds the window and filterbank as buffers.

Mel scale: the HTK formula ``mel = 2595 * log10(1 + f / 700)``. Filters are triangles in
frequency whose corners are equally spaced in mel between ``f_min`` and ``f_max``; each peaks at
height 1 at its centre (no area normalisation), so neighbouring triangles sum to 1 between the
first and the last centre.

Timing: frames are centred (the audio is zero-padded by ``n_fft // 2`` on both sides), so frame
``j`` is the window centred on sample ``j * hop_length``, i.e. time ``j * hop_length /
sample_rate`` seconds, and an input of ``S`` samples gives ``F = S // hop_length + 1`` frames.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_FLOOR = 1e-6
"""Added to the mel power before the log: silence reads ``log(1e-6) ≈ -13.8``."""


def hz_to_mel(freq_hz: torch.Tensor) -> torch.Tensor:
    """HTK mel of frequencies in Hz (any shape)."""
    return 2595.0 * torch.log10(1.0 + freq_hz / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`: frequencies in Hz (any shape)."""
    return 700.0 * (torch.pow(10.0, mel / 2595.0) - 1.0)


def mel_centers_hz(n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """The ``n_mels + 2`` triangle corners in Hz, equally spaced in mel from ``f_min`` to
    ``f_max``; filter ``m`` rises from corner ``m``, peaks at ``m + 1`` and falls to ``m + 2``.
    Returns ``(n_mels + 2,)`` float64."""
    edges = torch.tensor([f_min, f_max], dtype=torch.float64)
    low, high = hz_to_mel(edges).tolist()
    corners = mel_to_hz(torch.linspace(low, high, n_mels + 2, dtype=torch.float64))
    corners[0], corners[-1] = f_min, f_max      # exact ends, free of mel round-trip error
    return corners


def mel_filterbank(freqs_hz: torch.Tensor, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular mel filters evaluated at the given frequencies.

    Args:
        freqs_hz: ``(K,)`` frequencies in Hz (e.g. the rfft bin frequencies).
        n_mels: number of filters.
        f_min, f_max: lowest and highest corner in Hz.

    Returns:
        ``(n_mels, K)`` float64 weights in [0, 1]; row ``m`` is 1 at the centre of filter ``m``.
    """
    corners = mel_centers_hz(n_mels, f_min, f_max)
    freqs = freqs_hz.to(torch.float64)[None, :]
    lower, center, upper = corners[:-2, None], corners[1:-1, None], corners[2:, None]
    rising = (freqs - lower) / (center - lower)
    falling = (upper - freqs) / (upper - center)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


class LogMel(nn.Module):
    """Log-mel spectrogram of mono audio at ``sample_rate / hop_length`` frames per second.

    The power spectrum is ``|rfft(window * frame)|^2 / sum(window)^2``, so a sine of amplitude
    ``A`` on a bin centre reads ``A^2 / 4`` there; the output is ``log(mel power + 1e-6)``.

    Args:
        sample_rate: samples per second of the input.
        n_fft: window length in samples (400 = 25 ms at 16 kHz); a Hann window.
        hop_length: samples between frames (160 = 10 ms at 16 kHz).
        n_mels: mel bands.
        f_min, f_max: filterbank range in Hz, ``0 <= f_min < f_max <= sample_rate / 2``.

    Raises:
        ValueError: naming the bad argument, including ``n_mels`` when some filter would fall
            between two rfft bins and see nothing.
    """

    # Buffers (registered in __init__), declared for the type checker: nn.Module's __getattr__ is untyped.
    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(self, sample_rate: int = 16000, n_fft: int = 400, hop_length: int = 160,
                 n_mels: int = 80, f_min: float = 20.0, f_max: float = 7600.0):
        super().__init__()
        for name, value in (("sample_rate", sample_rate), ("n_fft", n_fft),
                            ("hop_length", hop_length), ("n_mels", n_mels)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(f_min) and math.isfinite(f_max) and 0.0 <= f_min < f_max <= sample_rate / 2):
            raise ValueError(f"f_min, f_max must satisfy 0 <= f_min < f_max <= sample_rate / 2 "
                             f"= {sample_rate / 2}; got f_min={f_min}, f_max={f_max}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.f_min = float(f_min)
        self.f_max = float(f_max)

        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        bins_hz = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
        filters = mel_filterbank(bins_hz, n_mels, f_min, f_max)
        empty = (filters.sum(dim=1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"n_mels={n_mels} is too many for n_fft={n_fft} between {f_min} and "
                             f"{f_max} Hz: filter {empty[0]} covers no frequency bin")
        self.register_buffer("window", (window / window.sum()).to(torch.float32), persistent=False)
        self.register_buffer("filterbank", filters.to(torch.float32), persistent=False)

    @property
    def frame_rate(self) -> float:
        """Feature frames per second."""
        return self.sample_rate / self.hop_length

    def n_frames(self, n_samples: int) -> int:
        """Frames for an input of ``n_samples`` samples: ``n_samples // hop_length + 1``."""
        return n_samples // self.hop_length + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio (B, S)`` float in [-1, 1] → ``(B, n_mels, S // hop_length + 1)`` log-mel."""
        if audio.dim() != 2:
            raise ValueError(f"audio must be (batch, samples), got shape {tuple(audio.shape)}")
        half = self.n_fft // 2
        padded = nn.functional.pad(audio.to(self.window.dtype), (half, self.n_fft - half))
        frames = padded.unfold(-1, self.n_fft, self.hop_length)[:, : self.n_frames(audio.shape[-1])]
        spectrum = torch.fft.rfft(frames * self.window, dim=-1)
        power = spectrum.real.square() + spectrum.imag.square()       # (B, F, n_fft // 2 + 1)
        mel = torch.matmul(power, self.filterbank.T)                  # (B, F, n_mels)
        return torch.log(mel + LOG_FLOOR).transpose(1, 2)

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, "
                f"n_mels={self.n_mels}, f_min={self.f_min}, f_max={self.f_max}")
