"""Finetune recordings as typed records, the train/val split, and frame-rate reduction.

A finetune dataset (VOCASET, BEAT) is a list of *sequences*: one take of one subject, with its
motion file and its audio file. Readers (:mod:`.finetune_vocaset`, :mod:`.finetune_beat`)
list them with :class:`SequenceInfo` and load one at a time as a :class:`LoadedSequence`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import soundfile

from pseudo3d.training.data.targets import TargetSpec


@dataclass(frozen=True)
class SequenceInfo:
    """One take, before loading."""

    id: str
    """Unique within the dataset (the motion file's stem)."""
    subject: str
    n_frames: int
    """Frames at the target fps that have both motion and audio."""
    motion_path: Path
    audio_path: Path


@dataclass(frozen=True)
class LoadedSequence:
    target: np.ndarray
    """(n_frames, D) float32 at the target fps."""
    audio: np.ndarray
    """(N,) float32, 16 kHz mono."""


class SequenceReader(Protocol):
    """What :class:`~.finetune.FinetuneWindows` needs from a dataset format."""

    target: TargetSpec
    sequences: list[SequenceInfo]

    def load(self, info: SequenceInfo) -> LoadedSequence: ...


def decimation(source_fps: float, fps: float, where: str) -> int:
    """k such that keeping every k-th frame takes ``source_fps`` to ``fps`` (60 → 30: k = 2);
    raises when the ratio is not a whole number."""
    ratio = source_fps / fps
    k = int(round(ratio))
    if k < 1 or abs(ratio - k) > 1e-6:
        raise ValueError(f"{where}: cannot take {source_fps:g} fps to {fps:g} fps by dropping frames "
                         f"(the ratio {ratio:g} is not a whole number)")
    return k


def usable_frames(n_source_frames: int, k: int, fps: float, audio_path: Path) -> int:
    """Frames after keeping every k-th, limited to those the audio covers."""
    try:
        info = soundfile.info(str(audio_path))
    except RuntimeError as error:  # soundfile.LibsndfileError is one
        raise ValueError(f"audio file {audio_path} cannot be read: {error}") from None
    audio_frames = int(np.floor(info.frames / info.samplerate * fps + 1e-6))
    return min(-(-n_source_frames // k), audio_frames)


def split_sequences(sequences: Sequence[SequenceInfo], split: str, val_fraction: float,
                    split_seed: int) -> list[SequenceInfo]:
    """The ``train`` or ``val`` part, stratified by subject: of each subject's sequences (sorted
    by id, then permuted by a generator seeded with ``split_seed`` and the subject), the first
    ``round(val_fraction · n)`` go to val — at least one when ``val_fraction > 0`` and the
    subject has two or more, never all of them. Whole sequences only, so no frame is in both."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_subject: dict[str, list[SequenceInfo]] = {}
    for info in sorted(sequences, key=lambda s: s.id):
        by_subject.setdefault(info.subject, []).append(info)
    chosen: list[SequenceInfo] = []
    for subject, infos in sorted(by_subject.items()):
        n_val = int(round(val_fraction * len(infos)))
        if val_fraction > 0 and len(infos) >= 2:
            n_val = min(max(n_val, 1), len(infos) - 1)
        rng = np.random.default_rng([int(split_seed), *subject.encode()])
        order = rng.permutation(len(infos))
        val_ids = {infos[int(i)].id for i in order[:n_val]}
        chosen.extend(info for info in infos if (info.id in val_ids) == (split == "val"))
    return chosen
