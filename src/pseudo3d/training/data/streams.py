"""Stream stages over windows, each driven by its own ``numpy.random.Generator`` so a run is
reproducible: weighted mixing of sources, a shuffle buffer, and the audio-shuffle control."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Iterable, Iterator, Sequence, TypeVar

import numpy as np

from pseudo3d.training.data.windows import Window

T = TypeVar("T")

MIX_MODES = ("all", "first")
AUDIO_SHUFFLE_HORIZON = 64
"""Windows on each side of a window among which the audio shuffle picks its donor."""


def mix(streams: Sequence[Iterator[T]], weights: Sequence[float], rng: np.random.Generator,
        until: str = "all") -> Iterator[T]:
    """Items drawn from ``streams``, each next item from stream ``i`` with probability
    ``weights[i] / Σ weights`` over the streams still running. ``until="all"`` runs until every
    stream is exhausted (every item once; the proportions hold while all streams last);
    ``"first"`` stops when the first one runs out (the proportions hold throughout)."""
    if until not in MIX_MODES:
        raise ValueError(f"until must be one of {', '.join(MIX_MODES)}; got {until!r}")
    active = list(range(len(streams)))
    iterators = [iter(stream) for stream in streams]
    while active:
        if len(active) == 1:
            chosen = active[0]
        else:
            p = np.array([weights[i] for i in active], np.float64)
            chosen = active[int(rng.choice(len(active), p=p / p.sum()))]
        try:
            yield next(iterators[chosen])
        except StopIteration:
            if until == "first":
                return
            active.remove(chosen)


def shuffled(items: Iterable[T], buffer_size: int, rng: np.random.Generator) -> Iterator[T]:
    """A shuffle buffer: fill ``buffer_size`` items, then emit a random one and refill in its
    place; drain in random order at the end. ``buffer_size <= 1`` passes items through."""
    if buffer_size <= 1:
        yield from items
        return
    buffer: list[T] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        i = int(rng.integers(buffer_size))
        buffer[i], item = item, buffer[i]
        yield item
    for i in rng.permutation(len(buffer)):
        yield buffer[int(i)]


def swap_audio(windows: Iterable[Window], rng: np.random.Generator,
               horizon: int = AUDIO_SHUFFLE_HORIZON) -> Iterator[Window]:
    """Each window's target with the audio of another, randomly chosen window (the "does the
    model listen?" control). The donor is drawn uniformly from the ``horizon`` windows before
    and the ``horizon`` after it in the stream, among those of a different clip (or, only if
    there is none, of the same clip but never the window itself); an audio may serve more than
    one window. Order and targets are unchanged; a stream of a single window yields nothing."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    ahead: deque[Window] = deque()
    behind: deque[Window] = deque(maxlen=horizon)

    def paired(window: Window) -> Window | None:
        nearby = [*behind, *ahead]
        pool = [w for w in nearby if w.key != window.key] or nearby
        if not pool:
            return None
        return replace(window, audio=pool[int(rng.integers(len(pool)))].audio)

    for window in windows:
        ahead.append(window)
        if len(ahead) > horizon:
            current = ahead.popleft()
            result = paired(current)
            if result is not None:  # always, here: ahead still holds horizon windows
                yield result
            behind.append(current)
    while ahead:
        current = ahead.popleft()
        result = paired(current)
        if result is not None:
            yield result
        behind.append(current)
