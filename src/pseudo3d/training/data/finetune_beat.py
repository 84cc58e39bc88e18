"""Reading BEAT's facial blendshape takes: per take a JSON and a wav with the same stem,

```
ROOT/SPEAKER/SPEAKER_NAME_..._.json    {"names": [52 ARKit names], "frames": [{"weights": [...]}, ...]}
ROOT/SPEAKER/SPEAKER_NAME_..._.wav     the speech (any rate; resampled to 16 kHz)
```

at 60 fps (any folder depth; a take's subject is its stem up to the first ``_``, BEAT's speaker
id). Weights are reordered by ``names`` (matched case-insensitively) into
:data:`~.blendshapes.ARKIT_BLENDSHAPES` order; shapes a file does not name are 0. Targets are
the 52 weights at ``fps`` by keeping every k-th frame (60 → 30: every other frame).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pseudo3d.training.data.audio_files import read_audio_16k
from pseudo3d.training.data.blendshapes import ARKIT_BLENDSHAPES, arkit_index
from pseudo3d.training.data.sequences import LoadedSequence, SequenceInfo, decimation, usable_frames
from pseudo3d.training.data.targets import TargetSpec

SOURCE_FPS = 60.0


def read_blendshape_json(path: Path) -> np.ndarray:
    """(T, 52) float32 weights at the file's rate, in ARKit order. Errors name the file."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"BEAT {path} is not readable JSON: {error}") from None
    if not isinstance(content, dict) or not isinstance(content.get("frames"), list):
        raise ValueError(f"BEAT {path}: expected an object with a 'frames' list")
    names = content.get("names")
    if not isinstance(names, list) or not names:
        raise ValueError(f"BEAT {path}: no 'names' list naming the blendshape of each weight")
    columns = [arkit_index(name) for name in names]
    unknown = [name for name, column in zip(names, columns) if column is None]
    if unknown:
        raise ValueError(f"BEAT {path}: {unknown[:5]} are not ARKit blendshape names")
    if len(set(columns)) != len(columns):
        raise ValueError(f"BEAT {path}: 'names' lists a blendshape twice")
    weights = np.zeros((len(content["frames"]), len(ARKIT_BLENDSHAPES)), np.float32)
    for i, frame in enumerate(content["frames"]):
        values = frame.get("weights") if isinstance(frame, dict) else None
        if not isinstance(values, list) or len(values) != len(names):
            count = len(values) if isinstance(values, list) else "no"
            raise ValueError(f"BEAT {path}: frame {i} has {count} weights for {len(names)} names")
        weights[i, columns] = values
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
        stems = [p.stem for p in paths]
        if len(set(stems)) != len(stems):
            raise ValueError(f"BEAT {self.root}: two takes share a file name")
        self.sequences = [self._info(path) for path in paths]

    def _info(self, path: Path) -> SequenceInfo:
        audio_path = path.with_suffix(".wav")
        if not audio_path.is_file():
            raise FileNotFoundError(f"BEAT {path}: its audio {audio_path} does not exist")
        n_source = read_blendshape_json(path).shape[0]
        return SequenceInfo(id=path.stem, subject=subject_of(path.stem),
                            n_frames=usable_frames(n_source, self.step, self.fps, audio_path),
                            motion_path=path, audio_path=audio_path)

    def load(self, info: SequenceInfo) -> LoadedSequence:
        weights = read_blendshape_json(info.motion_path)[:: self.step][: info.n_frames]
        return LoadedSequence(target=np.ascontiguousarray(weights), audio=read_audio_16k(info.audio_path))
