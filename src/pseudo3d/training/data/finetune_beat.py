"""Reading BEAT's facial blendshape takes: per take a JSON and a wav with the same stem,

```
ROOT/SPEAKER/SPEAKER_NAME_..._.json    {"names": [52 ARKit names], "frames": [{"weights": [...]}, ...]}
ROOT/SPEAKER/SPEAKER_NAME_..._.wav     the speech (any rate; resampled to 16 kHz)
```

at 60 fps (any folder depth; a take's subject is its stem up to the first ``_``, BEAT's speaker
id). Weights are reordered by ``names`` (matched case-insensitively) into
:data:`~.blendshapes.ARKIT_BLENDSHAPES` order; shapes a file does not name are 0. Targets are
the 52 weights at ``fps`` by keeping every k-th frame (60 → 30: every other frame).

A ``.json`` that is not a take (not readable JSON, not an object with ``names`` and ``frames``,
weights that do not match the names, no wav beside it or one that cannot be read) is skipped with
a warning naming it; only a directory left with no take is refused.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from pseudo3d.pipelines.audio import load_audio
from pseudo3d.schemas.blendshapes import ARKIT_BLENDSHAPES, arkit_index
from pseudo3d.training.data.sequences import LoadedSequence, SequenceInfo, decimation, usable_frames
from pseudo3d.training.data.targets import TargetSpec
from pseudo3d.training.data.windows import SAMPLE_RATE

SOURCE_FPS = 60.0

log = logging.getLogger(__name__)


class NotATake(ValueError):
    """A ``.json`` (or its wav) that is not a usable take; the message says why."""


def read_blendshape_json(path: Path) -> np.ndarray:
    """(T, 52) float32 weights at the file's rate, in ARKit order. Errors name the file."""
    try:
        return _weights(path)
    except NotATake as error:
        raise ValueError(f"BEAT {path}: {error}") from None


def _weights(path: Path) -> np.ndarray:
    try:
        content = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise NotATake(f"not readable JSON: {error}") from None
    if not isinstance(content, dict) or not isinstance(content.get("frames"), list):
        raise NotATake("expected an object with a 'frames' list")
    names = content.get("names")
    if not isinstance(names, list) or not names:
        raise NotATake("no 'names' list naming the blendshape of each weight")
    columns = [arkit_index(name) if isinstance(name, str) else None for name in names]
    unknown = [name for name, column in zip(names, columns) if column is None]
    if unknown:
        raise NotATake(f"{unknown[:5]} are not ARKit blendshape names")
    if len(set(columns)) != len(columns):
        raise NotATake("'names' lists a blendshape twice")
    weights = np.zeros((len(content["frames"]), len(ARKIT_BLENDSHAPES)), np.float32)
    for i, frame in enumerate(content["frames"]):
        values = frame.get("weights") if isinstance(frame, dict) else None
        if not isinstance(values, list) or len(values) != len(names):
            count = len(values) if isinstance(values, list) else "no"
            raise NotATake(f"frame {i} has {count} weights for {len(names)} names")
        try:
            weights[i, columns] = values
        except (TypeError, ValueError):
            raise NotATake(f"frame {i} has weights that are not numbers") from None
    return weights


def subject_of(stem: str) -> str:
    return stem.split("_", 1)[0]


class BeatReader:
    """Lists the takes under a BEAT-layout directory and loads them (see the module doc)."""

    def __init__(self, root: str | Path, fps: float, *, subjects: list[str] | None = None,
                 source_fps: float = SOURCE_FPS):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"BEAT root {self.root} is not a directory")
        self.target = TargetSpec.blendshapes()
        self.fps = float(fps)
        self.step = decimation(source_fps, self.fps, f"BEAT {self.root}")
        paths = sorted(p for p in self.root.rglob("*.json") if not p.name.startswith("."))
        if not paths:
            raise FileNotFoundError(f"BEAT {self.root}: no .json takes found")
        if subjects is not None:
            paths = [p for p in paths if subject_of(p.stem) in set(subjects)]
            if not paths:
                raise ValueError(f"BEAT {self.root}: no takes for subjects {sorted(subjects)}")
        self.sequences = []
        skipped = []
        for path in paths:
            try:
                self.sequences.append(self._info(path))
            except NotATake as reason:
                log.warning("BEAT: skipping %s: %s", path, reason)
                skipped.append(f"{path.name}: {reason}")
        if not self.sequences:
            raise ValueError(f"BEAT {self.root}: none of the {len(paths)} .json files is a usable take "
                             f"(the first: {skipped[0]})")
        stems = [info.id for info in self.sequences]
        if len(set(stems)) != len(stems):
            twice = sorted({stem for stem in stems if stems.count(stem) > 1})
            raise ValueError(f"BEAT {self.root}: two takes share a file name ({', '.join(twice[:3])})")

    def _info(self, path: Path) -> SequenceInfo:
        audio_path = path.with_suffix(".wav")
        if not audio_path.is_file():
            raise NotATake(f"its audio {audio_path} does not exist")
        n_source = _weights(path).shape[0]
        try:
            n_frames = usable_frames(n_source, self.step, self.fps, audio_path)
        except ValueError as error:
            raise NotATake(str(error)) from None
        return SequenceInfo(id=path.stem, subject=subject_of(path.stem), n_frames=n_frames,
                            motion_path=path, audio_path=audio_path)

    def load(self, info: SequenceInfo) -> LoadedSequence:
        weights = read_blendshape_json(info.motion_path)[:: self.step][: info.n_frames]
        return LoadedSequence(target=np.ascontiguousarray(weights), audio=load_audio(info.audio_path, SAMPLE_RATE))
