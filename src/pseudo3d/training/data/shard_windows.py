"""Training windows streamed from pseudo3d shards: :class:`ShardWindows`.

Per reader (a DataLoader worker on a node, see :mod:`.distributed`) the stream is: each
source's assigned shards, in an order drawn from ``(seed, epoch, source)``, cut clip by clip
into windows (:mod:`.windows`) → sources mixed by weight → a shuffle buffer → optionally the
audio-shuffle control (:mod:`.streams`). Every random choice comes from generators seeded with
``(seed, epoch, rank, worker, n_workers)``, so the same settings give the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from pseudo3d.training.data.distributed import Assignment, ReaderSlot, assign, reader_slot
from pseudo3d.training.data.shards import ClipRecord, ShardSource, iter_clips, resolve_datasets
from pseudo3d.training.data.streams import MIX_MODES, mix as mix_streams, shuffled, swap_audio
from pseudo3d.training.data.targets import TargetSpec, shard_targets
from pseudo3d.training.data.windows import SAMPLE_RATE, Window, check_clip_audio, clip_windows, window_starts

# Stream-stage tags mixed into the seeds so each stage draws independent numbers.
_SHARD_ORDER, _MIX, _SHUFFLE, _AUDIO = 11, 12, 13, 14


@dataclass
class WindowCounts:
    """What a pass over the data saw: clips read, windows cut, clips skipped as too short."""

    clips: int = 0
    windows: int = 0
    short_clips: int = 0


class ShardWindows(torch.utils.data.IterableDataset):
    """Fixed-length windows of pseudo3d shards, as dicts ``{"audio": (L,) float32 tensor,
    "target": (window_frames, D) float32 tensor, "key": str, "start_frame": int, "fps": float}``
    with ``L = round(window_frames · 16000 / fps)``.

    ``sources``: ``[(path_or_url, weight), ...]`` (see :mod:`.shards` for what a path may be).
    Every clip must be at ``fps`` (motion is never resampled). ``stride_frames`` defaults to
    ``window_frames // 2``; clips shorter than a window are skipped (counted in :attr:`counts`
    when iterating in this process, or by :meth:`count`). ``shuffle_buffer <= 1`` turns
    shuffling off: shards in sorted order, windows in file order (several sources are still
    interleaved by weight, reproducibly). ``audio=False`` decodes no audio (the windows' ``audio``
    is an empty array: for statistics of the targets). ``mix="all"`` reads every window of every source once
    per epoch; ``"first"`` ends the epoch when the first source runs out, keeping the mixing
    proportions exact. ``audio_shuffle`` pairs each target with the audio of another window,
    from another clip whenever one is near in the stream (:func:`~.streams.swap_audio`).

    Shards are split among all readers (nodes × DataLoader workers, :mod:`.distributed`), so
    readers may get different numbers of windows. ``rank``/``world_size`` override the
    distributed setting (else ``torch.distributed`` or ``$PSEUDO3D_RANK`` /
    ``$PSEUDO3D_WORLD_SIZE``). Change epochs with :meth:`set_epoch` before iterating (workers
    must not be persistent to see it) or make a new instance.
    """

    def __init__(self, sources: Sequence[Any], target: TargetSpec, window_frames: int, *, fps: float,
                 stride_frames: int | None = None, shuffle_buffer: int = 256, seed: int = 0, epoch: int = 0,
                 audio_shuffle: bool = False, mix: str = "all", rank: int | None = None,
                 world_size: int | None = None, audio: bool = True):
        super().__init__()
        if not isinstance(target, TargetSpec):
            raise TypeError(f"target must be a TargetSpec, got {type(target).__name__}")
        if isinstance(window_frames, bool) or not isinstance(window_frames, int) or window_frames < 1:
            raise ValueError(f"window_frames must be a positive int, got {window_frames!r}")
        stride_frames = max(window_frames // 2, 1) if stride_frames is None else stride_frames
        if isinstance(stride_frames, bool) or not isinstance(stride_frames, int) or stride_frames < 1:
            raise ValueError(f"stride_frames must be a positive int, got {stride_frames!r}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps!r}")
        if mix not in MIX_MODES:
            raise ValueError(f"mix must be one of {', '.join(MIX_MODES)}; got {mix!r}")
        self.sources: list[ShardSource] = resolve_datasets(sources)
        self.target = target
        self.window_frames = window_frames
        self.stride_frames = stride_frames
        self.fps = float(fps)
        self.shuffle_buffer = int(shuffle_buffer)
        self.seed, self.epoch = int(seed), int(epoch)
        self.audio_shuffle = bool(audio_shuffle)
        self.mix = mix
        self.rank, self.world_size = rank, world_size
        self.audio = bool(audio)
        if audio_shuffle and not audio:
            raise ValueError("audio_shuffle needs the audio (audio=True)")
        self.counts = WindowCounts()

    @property
    def audio_length(self) -> int:
        """L, audio samples per window."""
        return int(round(self.window_frames * SAMPLE_RATE / self.fps))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot = reader_slot(self.rank, self.world_size)
        self.counts = WindowCounts()
        streams = [self._source_windows(i, source, slot) for i, source in enumerate(self.sources)]
        weights = [source.weight for source in self.sources]
        stream: Iterator[Window] = mix_streams(streams, weights, self._rng(_MIX, slot), self.mix)
        stream = shuffled(stream, self.shuffle_buffer, self._rng(_SHUFFLE, slot))
        if self.audio_shuffle:
            stream = swap_audio(stream, self._rng(_AUDIO, slot))
        for window in stream:
            yield window.to_dict()

    def count(self) -> WindowCounts:
        """Clips, windows and too-short clips over all shards (all readers together), from the
        clips' ``meta.json`` alone."""
        counts = WindowCounts()
        for source in self.sources:
            for shard in source.shards:
                for clip in iter_clips(shard, (), audio=False):
                    self._tally(counts, int(clip.meta["n_frames"]))
        return counts

    # -- internals -------------------------------------------------------------------------

    def _rng(self, stage: int, slot: ReaderSlot | None = None, extra: int = 0) -> np.random.Generator:
        entropy = [self.seed, self.epoch, stage, extra]
        if slot is not None:
            entropy += [slot.rank, slot.world_size, slot.worker, slot.n_workers]
        return np.random.default_rng(entropy)

    def _shard_order(self, index: int, source: ShardSource) -> tuple[str, ...]:
        if self.shuffle_buffer <= 1:
            return source.shards
        order = self._rng(_SHARD_ORDER, extra=index).permutation(len(source.shards))
        return tuple(source.shards[int(i)] for i in order)

    def _tally(self, counts: WindowCounts, n_frames: int) -> int:
        n_windows = len(range(0, max(n_frames - self.window_frames + 1, 0), self.stride_frames))
        counts.clips += 1
        counts.windows += n_windows
        counts.short_clips += n_windows == 0
        return n_windows

    def _source_windows(self, index: int, source: ShardSource, slot: ReaderSlot) -> Iterator[Window]:
        assignment: Assignment = assign(self._shard_order(index, source), slot)
        clip_index = -1
        for shard in assignment.shards:
            for clip in iter_clips(shard, self.target.members, audio=self.audio):
                clip_index += 1
                if not assignment.keeps(clip_index):
                    continue
                if self._tally(self.counts, int(clip.meta.get("n_frames", 0))) == 0:
                    continue
                yield from self._clip_windows(clip)

    def _clip_windows(self, clip) -> list[Window]:
        target = clip_target(clip, self.target, self.fps)
        if clip.audio is None:  # audio=False
            silent = np.zeros(0, np.float32)
            return [Window(key=clip.key, start_frame=start, fps=self.fps, audio=silent,
                           target=target[start:start + self.window_frames])
                    for start in window_starts(target.shape[0], self.window_frames, self.stride_frames)]
        return clip_windows(clip.key, clip.audio, target, self.fps, self.window_frames, self.stride_frames)


def clip_target(clip: ClipRecord, spec: TargetSpec, fps: float) -> np.ndarray:
    """The (n_frames, D) target of a decoded clip, checked against what its windows need: the
    frame rate ``fps``, 16 kHz audio covering the frames (where it was decoded), arrays as long
    as ``meta.json`` says. Raises ValueError naming the clip."""
    clip_fps = float(clip.meta.get("fps", 0.0))
    if abs(clip_fps - fps) > 1e-6 * fps:
        raise ValueError(f"{clip.where} is at {clip_fps:g} fps but the windows are cut at {fps:g} fps; "
                         "resample or rebuild the dataset at one frame rate")
    if clip.audio is not None and clip.sample_rate != SAMPLE_RATE:
        raise ValueError(f"{clip.where}: audio at {clip.sample_rate} Hz, expected {SAMPLE_RATE}")
    target = shard_targets(spec, clip.arrays, clip.where)
    n_frames = int(clip.meta.get("n_frames", target.shape[0]))
    if target.shape[0] != n_frames:
        raise ValueError(f"{clip.where}: meta.json says {n_frames} frames, the arrays hold {target.shape[0]}")
    if clip.audio is not None:
        check_clip_audio(clip.audio.shape[0], n_frames, fps, clip.where)
    return target
