"""A synthetic dataset in BEAT's facial-capture layout, from synthetic speech, for tests and demos
without licensed data:

```
ROOT/SPEAKER/SPEAKER_synth_0_K_K.json   {"names": [52 ARKit names], "frames": [{"time": s, "weights": [52]}]}
ROOT/SPEAKER/SPEAKER_synth_0_K_K.wav    16-bit mono speech at 48 kHz
```

at 60 fps. ``names`` is in alphabetical order, not Apple's, so a reader must map weights by
name. Per take, from a speech plan (:mod:`pseudo3d.synth.speech`) and its mouth opening
``m(t)``: ``jawOpen`` = 0.8 m; lower lip down 0.4 m, upper lip up 0.15 m (both sides);
``mouthFunnel`` / ``mouthPucker`` on rounded vowels, ``mouthStretch`` on spread ones;
``mouthClose`` while speaking with the jaw nearly shut; a slow smile; brows drifting slowly; a
blink (150 ms, both eyes) every 2-6 s; everything else 0 (``tongueOut`` included).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile
from scipy.ndimage import gaussian_filter1d

from pseudo3d.synth.speech import SAMPLE_RATE as SPEECH_RATE
from pseudo3d.synth.speech import SpeechPlan, mouth_open_curve, plan_speech, synthesize_speech
from pseudo3d.schemas.blendshapes import ARKIT_BLENDSHAPES

FPS = 60
ROUNDED_VOWELS = ("o", "u")
SPREAD_VOWELS = ("i", "e", "ae")
BLINK_S = 0.15


def write_synthetic_beat(root: str | Path, *, sequences: int = 4, seconds: float = 4.0, seed: int = 0,
                         speakers: int = 2) -> Path:
    """Write ``sequences`` takes, dealt round-robin to ``speakers`` speakers (ids 1, 2, ...),
    under ``root`` and return ``root``. Deterministic for the arguments."""
    if sequences < 1 or speakers < 1 or not seconds > 0.5:
        raise ValueError(f"need sequences >= 1, speakers >= 1 and seconds > 0.5; "
                         f"got {sequences}, {speakers}, {seconds}")
    root = Path(root)
    rng = np.random.default_rng([seed, 52])
    names = sorted(ARKIT_BLENDSHAPES)
    columns = [ARKIT_BLENDSHAPES.index(name) for name in names]
    for k in range(sequences):
        speaker = k % speakers + 1
        folder = root / str(speaker)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{speaker}_synth_0_{k + 1}_{k + 1}"
        plan = plan_speech(rng, seconds)
        audio = synthesize_speech(plan, rng)
        weights = blendshape_curves(plan, int(round(seconds * FPS)), rng)
        frames = [{"time": round(i / FPS, 6), "weights": [round(float(v), 6) for v in row[columns]]}
                  for i, row in enumerate(weights)]
        (folder / f"{stem}.json").write_text(json.dumps({"names": names, "frames": frames}))
        soundfile.write(str(folder / f"{stem}.wav"), audio, SPEECH_RATE, subtype="PCM_16")
    return root


def blendshape_curves(plan: SpeechPlan, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(n_frames, 52) weights in [0, 1], ARKit order, at :data:`FPS`."""
    times = np.arange(n_frames) / FPS
    mouth = mouth_open_curve(plan, times)
    rounded, spread, speaking = (np.zeros(n_frames) for _ in range(3))
    for syllable in plan.syllables:
        span = (times >= syllable.start_s) & (times <= syllable.end_s)
        speaking[span] = 1.0
        rounded[span] = max(rounded[span].max(initial=0.0), float(syllable.vowel in ROUNDED_VOWELS))
        spread[span] = max(spread[span].max(initial=0.0), float(syllable.vowel in SPREAD_VOWELS))
    rounded, spread, speaking = (gaussian_filter1d(x, 0.04 * FPS) for x in (rounded, spread, speaking))

    weights = np.zeros((n_frames, len(ARKIT_BLENDSHAPES)))

    def put(name: str, values: np.ndarray) -> None:
        weights[:, ARKIT_BLENDSHAPES.index(name)] = np.clip(values, 0.0, 1.0)

    put("jawOpen", 0.8 * mouth)
    for side in ("Left", "Right"):
        put(f"mouthLowerDown{side}", 0.4 * mouth)
        put(f"mouthUpperUp{side}", 0.15 * mouth)
        put(f"mouthStretch{side}", 0.3 * spread * (0.5 + mouth))
    put("mouthFunnel", 0.5 * rounded * (0.3 + mouth))
    put("mouthPucker", 0.4 * rounded * (1.0 - mouth))
    put("mouthClose", 0.3 * speaking * np.clip(1.0 - 4.0 * mouth, 0.0, 1.0))
    smile = _slow(rng, n_frames, 0.8)
    brows = _slow(rng, n_frames, 1.2)
    for side in ("Left", "Right"):
        put(f"mouthSmile{side}", 0.35 * smile)
        put(f"browOuterUp{side}", 0.2 * brows)
    put("browInnerUp", 0.25 * brows)
    blink = _blinks(rng, n_frames)
    put("eyeBlinkLeft", blink)
    put("eyeBlinkRight", blink)
    return weights.astype(np.float32)


def _slow(rng: np.random.Generator, n_frames: int, sigma_s: float) -> np.ndarray:
    """A smooth random curve in [0, 1]."""
    curve = gaussian_filter1d(rng.normal(0.0, 1.0, n_frames), sigma_s * FPS, mode="nearest")
    low, high = float(curve.min()), float(curve.max())
    return (curve - low) / max(high - low, 1e-9)


def _blinks(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """Raised-cosine blinks of :data:`BLINK_S` seconds every 2-6 s, peak 0.9-1."""
    curve = np.zeros(n_frames)
    times = np.arange(n_frames) / FPS
    t = rng.uniform(0.5, 2.5)
    while t < times[-1]:
        phase = (times - t) / BLINK_S
        inside = (phase >= 0) & (phase <= 1)
        curve[inside] = np.maximum(curve[inside], rng.uniform(0.9, 1.0) * 0.5 * (1 - np.cos(2 * np.pi * phase[inside])))
        t += rng.uniform(2.0, 6.0)
    return curve
