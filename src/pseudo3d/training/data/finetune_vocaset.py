"""Reading VOCASET as the speech-driven animation papers lay it out (FaceFormer, CodeTalker):

```
ROOT/templates.pkl                          dict subject → (V, 3) neutral mesh, metres
ROOT/vertices_npy/SUBJECT_SENTENCE.npy      (T, 3 V) registered meshes at 60 fps
ROOT/wav/SUBJECT_SENTENCE.wav               the speech (any rate; resampled to 16 kHz)
```

Subjects contain underscores (``FaceTalk_170725_00137_TA``); a file's subject is the longest
template name its stem starts with, followed by ``_``. ``templates.pkl`` is a Python 2 pickle,
read only through :func:`pseudo3d.reconstruction.safe_pickle.safe_unpickle` (nothing in it is
imported or run). Targets are ``mesh_offsets`` = vertices − the subject's template, at ``fps``
by keeping every k-th frame (60 → 30: every other frame, as the field does).

A ``.npy`` under ``vertices_npy/`` that is not a sequence (its name starts with no subject, it is
not a plain numeric array of the templates' vertex count, or its wav is missing or unreadable)
is skipped with a warning naming it; only a dataset left with no sequence is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pseudo3d.pipelines.audio import load_audio
from pseudo3d.reconstruction.safe_pickle import safe_unpickle
from pseudo3d.training.data.sequences import LoadedSequence, SequenceInfo, decimation, usable_frames
from pseudo3d.training.data.targets import TargetSpec
from pseudo3d.training.data.windows import SAMPLE_RATE

TEMPLATES_FILE = "templates.pkl"
VERTICES_DIR = "vertices_npy"
WAV_DIR = "wav"
SOURCE_FPS = 60.0

log = logging.getLogger(__name__)


class StrayFile(ValueError):
    """A file in the layout that is not a usable sequence; the message says why."""


def load_templates(path: Path) -> dict[str, np.ndarray]:
    """Subject → (V, 3) float32 template, every template with the same V."""
    if not path.is_file():
        raise FileNotFoundError(f"VOCASET templates {path} does not exist")
    content = safe_unpickle(path.read_bytes(), source=path, what="VOCASET templates")
    if not isinstance(content, dict) or not content:
        raise ValueError(f"VOCASET templates {path}: expected a non-empty dict subject → (V, 3) array, "
                         f"got {type(content).__name__}")
    templates = {}
    for subject, template in content.items():
        array = np.asarray(template, np.float32)
        if array.ndim == 1 and array.size % 3 == 0:
            array = array.reshape(-1, 3)
        if array.ndim != 2 or array.shape[1] != 3:
            raise ValueError(f"VOCASET templates {path}: subject {subject!r} has shape {array.shape}, expected (V, 3)")
        templates[str(subject)] = array
    sizes = {array.shape[0] for array in templates.values()}
    if len(sizes) > 1:
        raise ValueError(f"VOCASET templates {path}: subjects have different vertex counts {sorted(sizes)}")
    return templates


class VocasetReader:
    """Lists the sequences of a VOCASET-layout directory and loads them (see the module doc)."""

    def __init__(self, root: str | Path, fps: float, *, subjects: list[str] | None = None,
                 source_fps: float = SOURCE_FPS):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"VOCASET root {self.root} is not a directory")
        self.templates = load_templates(self.root / TEMPLATES_FILE)
        self.n_vertices: int = next(iter(self.templates.values())).shape[0]
        self.target = TargetSpec.mesh(self.n_vertices, template="subject")
        self.fps = float(fps)
        self.step = decimation(source_fps, self.fps, f"VOCASET {self.root}")
        if subjects is not None:
            unknown = sorted(set(subjects) - set(self.templates))
            if unknown:
                raise ValueError(f"VOCASET {self.root}: subjects {unknown} are not in {TEMPLATES_FILE}")
        wanted = set(self.templates) if subjects is None else set(subjects)
        self.sequences = [info for info in self._list() if info.subject in wanted]
        if not self.sequences:
            raise ValueError(f"VOCASET {self.root}: no sequences for subjects {sorted(wanted)}")

    def _list(self) -> list[SequenceInfo]:
        folder = self.root / VERTICES_DIR
        if not folder.is_dir():
            raise FileNotFoundError(f"VOCASET {self.root}: no {VERTICES_DIR}/ directory")
        paths = sorted(p for p in folder.glob("*.npy") if not p.name.startswith("."))
        if not paths:
            raise FileNotFoundError(f"VOCASET {folder}: no .npy files")
        by_length = sorted(self.templates, key=len, reverse=True)
        infos, skipped = [], []
        for path in paths:
            try:
                infos.append(self._info(path, by_length))
            except StrayFile as stray:
                log.warning("VOCASET: skipping %s: %s", path, stray)
                skipped.append(f"{path.name}: {stray}")
        if not infos:
            raise ValueError(f"VOCASET {folder}: none of the {len(paths)} .npy files is a usable sequence "
                             f"(the first: {skipped[0]})")
        return infos

    def _info(self, path: Path, by_length: list[str]) -> SequenceInfo:
        subject = next((s for s in by_length if path.stem.startswith(s + "_")), None)
        if subject is None:
            raise StrayFile(f"its name starts with no subject of {TEMPLATES_FILE} "
                            f"({', '.join(sorted(self.templates))})")
        shape = self._vertices(path).shape
        n_values = 3 * self.n_vertices
        if len(shape) != 2 or shape[1] != n_values:
            raise StrayFile(f"shape {shape}, expected (T, {n_values}) for {self.n_vertices} vertices "
                            f"as in {TEMPLATES_FILE}")
        audio_path = self.root / WAV_DIR / f"{path.stem}.wav"
        if not audio_path.is_file():
            raise StrayFile(f"its audio {audio_path} does not exist")
        try:
            n_frames = usable_frames(shape[0], self.step, self.fps, audio_path)
        except ValueError as error:
            raise StrayFile(str(error)) from None
        return SequenceInfo(id=path.stem, subject=subject, n_frames=n_frames, motion_path=path, audio_path=audio_path)

    @staticmethod
    def _vertices(path: Path) -> np.ndarray:
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise StrayFile(f"not a plain numeric .npy: {error}") from None

    def load(self, info: SequenceInfo) -> LoadedSequence:
        vertices = np.asarray(self._vertices(info.motion_path)[:: self.step][: info.n_frames], np.float32)
        offsets = vertices - self.templates[info.subject].reshape(1, -1)
        return LoadedSequence(target=np.ascontiguousarray(offsets), audio=load_audio(info.audio_path, SAMPLE_RATE))
