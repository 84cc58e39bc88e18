"""A synthetic dataset in VOCASET's layout (as FaceFormer and CodeTalker read it), made from the
synthetic FLAME head and synthetic speech, for tests and demos without licensed data:

```
ROOT/templates.pkl                   dict subject → (V, 3) float64 neutral mesh, metres (pickle protocol 2)
ROOT/vertices_npy/SUBJECT_sentenceNN.npy   (T, 3 V) float32 meshes at 60 fps
ROOT/wav/SUBJECT_sentenceNN.wav      16-bit mono speech at 22.05 kHz
```

V is the synthetic head's 478 (real VOCASET: 5023). Each subject has a random identity (FLAME
shape coefficients, N(0, 1) on the first :data:`N_SHAPE` components); its template is that head
with zero expression and pose. Each sentence is a speech plan (:mod:`pseudo3d.synth.speech`):
its audio, and a mouth opening ``m(t)`` in [0, 1] that drives the jaw (x-rotation
:data:`JAW_OPEN_RAD` · m), the lower lip (expression 4, 1.2 · m), lip rounding (expression 1,
following rounded vowels) and a slow smile (expression 2); the head does not move.
"""

from __future__ import annotations

import pickle
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
import soundfile
import torch
from scipy.ndimage import gaussian_filter1d
from scipy.signal import resample_poly

from pseudo3d.reconstruction.flame import FlameModel
from pseudo3d.testing.flame_assets import write_synthetic_flame_model
from pseudo3d.synth.speech import SAMPLE_RATE as SPEECH_RATE
from pseudo3d.synth.speech import mouth_open_curve, plan_speech, synthesize_speech

FPS = 60
WAV_RATE = 22_050
N_SHAPE = 10
N_EXPRESSION = 10
JAW_OPEN_RAD = 0.25
"""Jaw rotation (radians about x) at a fully open mouth."""
ROUNDED_VOWELS = ("o", "u")


def subject_name(seed: int, index: int) -> str:
    """VOCASET-like subject names, underscores included (``SynthTalk_000000_00001_TA``)."""
    return f"SynthTalk_{seed:06d}_{index + 1:05d}_TA"


def write_synthetic_vocaset(root: str | Path, *, subjects: int = 2, sentences: int = 4, seconds: float = 4.0,
                            seed: int = 0) -> Path:
    """Write the dataset under ``root`` (created; existing files of the same names are
    replaced) and return ``root``. Deterministic for the arguments."""
    if subjects < 1 or sentences < 1 or not seconds > 0.5:
        raise ValueError(f"need subjects >= 1, sentences >= 1 and seconds > 0.5; "
                         f"got {subjects}, {sentences}, {seconds}")
    root = Path(root)
    (root / "vertices_npy").mkdir(parents=True, exist_ok=True)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    flame = _flame(seed)
    rng = np.random.default_rng([seed, 5023])
    templates: dict[str, np.ndarray] = {}
    for s in range(subjects):
        subject = subject_name(seed, s)
        shape = torch.as_tensor(rng.normal(0.0, 1.0, (1, N_SHAPE)), dtype=torch.float32)
        neutral = _vertices(flame, shape, np.zeros((1, N_EXPRESSION)), np.zeros((1, 3)))[0]
        templates[subject] = neutral.astype(np.float64)
        for k in range(sentences):
            stem = f"{subject}_sentence{k + 1:02d}"
            audio, expression, jaw = _sentence(rng, seconds)
            vertices = _vertices(flame, shape.expand(len(jaw), -1), expression, jaw)
            np.save(root / "vertices_npy" / f"{stem}.npy", vertices.reshape(len(jaw), -1).astype(np.float32))
            soundfile.write(str(root / "wav" / f"{stem}.wav"), _resample(audio, SPEECH_RATE, WAV_RATE),
                            WAV_RATE, subtype="PCM_16")
    with open(root / "templates.pkl", "wb") as handle:
        pickle.dump(templates, handle, protocol=2)
    return root


def _flame(seed: int) -> FlameModel:
    with tempfile.TemporaryDirectory() as folder:
        path = write_synthetic_flame_model(Path(folder) / "generic_model.pkl", seed=seed)
        return FlameModel.from_file(path, n_shape=N_SHAPE, n_expression=N_EXPRESSION)


def _vertices(flame: FlameModel, shape: torch.Tensor, expression: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    """(T, V, 3) float32 meshes, metres."""
    with torch.no_grad():
        output = flame(shape=shape, expression=torch.as_tensor(expression, dtype=torch.float32),
                       jaw_pose=torch.as_tensor(jaw, dtype=torch.float32))
    return output.vertices.numpy()


def _sentence(rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(audio at the speech rate, expression (T, N_EXPRESSION), jaw pose (T, 3)) at :data:`FPS`."""
    plan = plan_speech(rng, seconds)
    audio = synthesize_speech(plan, rng)
    n_frames = int(round(seconds * FPS))
    times = np.arange(n_frames) / FPS
    mouth = mouth_open_curve(plan, times)
    rounded = np.zeros(n_frames)
    for syllable in plan.syllables:
        if syllable.vowel in ROUNDED_VOWELS:
            rounded[(times >= syllable.nucleus_start_s) & (times <= syllable.end_s)] = 1.0
    rounded = gaussian_filter1d(rounded, 0.04 * FPS)
    smile = gaussian_filter1d(rng.normal(0.0, 1.0, n_frames), 0.6 * FPS)
    smile = 0.6 * np.clip(smile / max(float(np.abs(smile).max()), 1e-9), 0.0, 1.0)
    expression = np.zeros((n_frames, N_EXPRESSION))
    expression[:, 4] = 1.2 * mouth          # lower lip down
    expression[:, 1] = 0.8 * rounded        # lip rounding
    expression[:, 2] = smile                # slow smile
    jaw = np.zeros((n_frames, 3))
    jaw[:, 0] = JAW_OPEN_RAD * mouth
    return audio, expression, jaw


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    common = gcd(rate, target)
    return np.clip(resample_poly(audio, target // common, rate // common), -1.0, 1.0).astype(np.float32)
