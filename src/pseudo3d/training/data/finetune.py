"""Training windows of a small high-fidelity 3D dataset (VOCASET or BEAT): :class:`FinetuneWindows`."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from pseudo3d.training.data.finetune_beat import BeatReader
from pseudo3d.training.data.finetune_vocaset import VocasetReader
from pseudo3d.training.data.sequences import LoadedSequence, SequenceInfo, SequenceReader, split_sequences
from pseudo3d.training.data.targets import TargetSpec
from pseudo3d.training.data.windows import SAMPLE_RATE, Window, audio_window_length, cut_window, window_starts

FORMATS: dict[str, Callable[..., SequenceReader]] = {"vocaset": VocasetReader, "beat": BeatReader}

CACHED_SEQUENCES = 8
"""Sequences kept decoded per process; the train order visits them in groups of this size."""


class FinetuneWindows(torch.utils.data.Dataset):
    """Fixed-length windows of a VOCASET- or BEAT-layout dataset, as the same dicts
    :class:`~.shard_windows.ShardWindows` yields (``audio`` (L,), ``target`` (window_frames, D),
    ``key`` = the sequence id, ``start_frame``, ``fps``).

    ``split`` takes whole sequences (:func:`~.sequences.split_sequences`, stratified by subject,
    fixed by ``split_seed``). ``seed`` orders the windows: the ``train`` split is shuffled (in
    groups of :data:`CACHED_SEQUENCES` sequences so decoding stays cheap), ``val`` is in
    sequence order. Changing ``seed`` every epoch reshuffles without moving any sequence
    between train and val. Sequences shorter than a window are skipped (:attr:`short_sequences`).
    A map-style dataset: use it with a plain DataLoader (``shuffle=False`` keeps this order).
    """

    def __init__(self, root: str | Path, format: str, window_frames: int, *, fps: float = 30.0,
                 split: str = "train", val_fraction: float = 0.2, seed: int = 0,
                 subjects: list[str] | None = None, stride_frames: int | None = None, split_seed: int = 0):
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
        if isinstance(window_frames, bool) or not isinstance(window_frames, int) or window_frames < 1:
            raise ValueError(f"window_frames must be a positive int, got {window_frames!r}")
        stride_frames = max(window_frames // 2, 1) if stride_frames is None else int(stride_frames)
        self.reader: SequenceReader = FORMATS[format](root, float(fps), subjects=subjects)
        self.format, self.split = format, split
        self.target: TargetSpec = self.reader.target
        self.fps = float(fps)
        self.window_frames, self.stride_frames = window_frames, stride_frames
        self.sequences: list[SequenceInfo] = split_sequences(self.reader.sequences, split, val_fraction, split_seed)
        self.short_sequences = [s.id for s in self.sequences if s.n_frames < window_frames]
        self._windows = self._order(seed)
        self._cache: OrderedDict[int, LoadedSequence] = OrderedDict()

    @property
    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.sequences})

    @property
    def templates(self) -> dict[str, np.ndarray] | None:
        """Subject → (V, 3) template for VOCASET (add it to an offset to get the mesh); None for BEAT."""
        return getattr(self.reader, "templates", None)

    @property
    def audio_length(self) -> int:
        return audio_window_length(self.window_frames, self.fps, SAMPLE_RATE)

    def __len__(self) -> int:
        return len(self._windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} of {len(self)}")
        sequence_index, start = self._windows[index]
        loaded = self._load(sequence_index)
        audio, target = cut_window(loaded.audio, loaded.target, start, self.window_frames, self.fps)
        key = self.sequences[sequence_index].id
        return Window(key=key, start_frame=start, fps=self.fps, audio=audio, target=target).to_dict()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(len(self)):
            yield self[index]

    def _order(self, seed: int) -> list[tuple[int, int]]:
        def windows_of(i: int) -> list[tuple[int, int]]:
            starts = window_starts(self.sequences[i].n_frames, self.window_frames, self.stride_frames)
            return [(i, start) for start in starts]

        if self.split != "train":
            return [w for i in range(len(self.sequences)) for w in windows_of(i)]
        rng = np.random.default_rng([int(seed), 21])
        order = [int(i) for i in rng.permutation(len(self.sequences))]
        windows: list[tuple[int, int]] = []
        for first in range(0, len(order), CACHED_SEQUENCES):
            group = [w for i in order[first:first + CACHED_SEQUENCES] for w in windows_of(i)]
            windows.extend(group[int(j)] for j in rng.permutation(len(group)))
        return windows

    def _load(self, sequence_index: int) -> LoadedSequence:
        if sequence_index in self._cache:
            self._cache.move_to_end(sequence_index)
            return self._cache[sequence_index]
        loaded = self.reader.load(self.sequences[sequence_index])
        self._cache[sequence_index] = loaded
        while len(self._cache) > CACHED_SEQUENCES:
            self._cache.popitem(last=False)
        return loaded
