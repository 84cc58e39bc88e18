"""A process pool that survives its workers: one task per worker at a time, results in input order,
a watchdog per task, and bounded look-ahead.

``multiprocessing.Pool`` waits forever when a worker dies in native code (a segfault in a decoder,
the OOM killer) and buffers every finished result behind a slow one. Here each worker owns a pipe;
the parent waits on the pipes and on the processes' sentinels, so

* a worker that dies mid-task yields :class:`TaskDied` (``crashed``) for that task, and a fresh
  worker takes its place;
* a task past its deadline, or silent for ``stall_timeout`` seconds (no :func:`report_progress`),
  has its worker killed and yields :class:`TaskDied` (``timeout``). The deadline starts at
  ``base_timeout`` and, when the task reports how much work it holds (a video's duration, after
  probing), becomes ``base_timeout + per_unit × units``; a task that reports its work unknown
  (``units <= 0``) has no deadline, only the stall watch, so a long input without a declared
  duration is neither killed early nor left hanging;
* at most ``max_ahead`` tasks run or wait ahead of the next result to hand out, and no new task
  starts while the results waiting to be handed out hold more than ``max_buffered_bytes``
  (pickled), so memory stays bounded however slow one task is;
* a result that ``retry(item, result, attempt)`` calls transient (a :class:`TaskDied`, or a
  result the caller judges so) is thrown away and its task run again, before any new task, up to
  ``retries`` times; the last attempt's result is handed out, still in input order;
* a result that ``expand(item, result)`` turns into new items (a long video's chunks) is replaced
  by those items' results, in its place in the order: they run before any later task starts, on
  as many workers as are free;
* the pool may start with fewer workers than ``n_workers`` (``start_workers``: a build with
  fewer inputs than workers) and starts more, up to ``n_workers``, when tasks wait for one (a
  long video's chunks).

Workers are spawned (never forked), run ``initializer(*initargs)`` once, then serve tasks.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import multiprocessing
import multiprocessing.connection
import pickle
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

_READY = "ready"
_UNITS = "units"
_BEAT = "beat"
_RESULT = "result"
BEAT_INTERVAL_S = 1.0
"""A task's progress reaches the parent at most this often."""

_progress_connection = None
_attempt = 1
_last_beat = 0.0


def current_attempt() -> int:
    """Inside a task: 1 on its first run, 2 on its first retry, and so on."""
    return _attempt


def report_units(units: float) -> None:
    """Called inside a task to tell the parent how much work it holds (e.g. seconds of video;
    0 or less: unknown), which sets its deadline. Outside a pool worker it does nothing."""
    if _progress_connection is not None:
        _progress_connection.send((_UNITS, float(units)))


def report_progress() -> None:
    """Called inside a task whenever it gets on (a decoded frame, a finished clip): proof of life
    for the stall watch, sent at most every :data:`BEAT_INTERVAL_S`. Outside a pool worker it
    does nothing."""
    global _last_beat
    now = time.monotonic()
    if _progress_connection is not None and now - _last_beat >= BEAT_INTERVAL_S:
        _last_beat = now
        _progress_connection.send((_BEAT, None))


@dataclass(frozen=True)
class TaskDied:
    """What a task yields when its worker did not return a result."""

    reason: str
    """``crashed`` (the worker process died) or ``timeout`` (the watchdog killed it)."""
    detail: str


def _worker_main(connection, initializer, initargs, function) -> None:
    global _progress_connection, _attempt
    _progress_connection = connection
    initializer(*initargs)
    connection.send((_READY, None))
    while True:
        message = connection.recv()
        if message is None:
            return
        index, _attempt, item = message
        connection.send_bytes(pickle.dumps((_RESULT, (index, function(item))), protocol=pickle.HIGHEST_PROTOCOL))


@dataclass
class _Worker:
    process: Any
    connection: Any
    ready: bool = False
    index: int | None = None
    started: float = 0.0
    deadline: float = float("inf")
    beat: float = 0.0
    """When the running task last showed progress (or started)."""


Retry = Callable[[Any, Any, int], bool]
"""``retry(item, result, attempt)``: whether ``result``, from run ``attempt`` of ``item``, is worth
running again."""
Expand = Callable[[Any, Any], "Sequence[Any] | None"]
"""``expand(item, result)``: the items to run in place of ``item`` (at least one), or None to
hand ``result`` out."""


_END = object()
"""The end of :meth:`IsolatedPool.imap`'s items."""


class IsolatedPool:
    def __init__(self, n_workers: int, initializer: Callable, initargs: tuple, function: Callable[[Any], Any], *,
                 base_timeout: float, per_unit: float, stall_timeout: float = float("inf"),
                 max_ahead: int | None = None, max_buffered_bytes: float = float("inf"),
                 retries: int = 0, retry: Retry | None = None, expand: Expand | None = None,
                 start_workers: int | None = None):
        self.context = multiprocessing.get_context("spawn")
        self.n_workers = n_workers
        self.spec = (initializer, initargs, function)
        self.base_timeout, self.per_unit, self.stall_timeout = base_timeout, per_unit, stall_timeout
        self.max_ahead = max_ahead or 2 * n_workers
        self.max_buffered_bytes = max_buffered_bytes
        self.retries, self.retry, self.expand = retries, retry, expand
        started = n_workers if start_workers is None else min(start_workers, n_workers)
        self.workers = [self._start() for _ in range(started)]

    def _start(self) -> _Worker:
        parent_end, child_end = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(child_end, *self.spec), daemon=True)
        process.start()
        child_end.close()
        return _Worker(process=process, connection=parent_end)

    def _replace(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.connection.close()
        self.workers[self.workers.index(worker)] = self._start()

    def imap(self, items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        """``(item, result)`` (the result may be a :class:`TaskDied`) for ``items``, in order; a
        result the pool's ``expand`` expands gives way to its new items' pairs. Items are taken
        from ``items`` only as far ahead as work may start (``max_ahead`` past the oldest item
        not yet handed out), and dropped once handed out: an iterator of a million sources is
        never held whole."""
        expand = self.expand
        pending = iter(items)
        tasks: dict[int, Any] = {}  # task id → item, until its pair is handed out; expansions add
        next_id = 0
        rank: dict[int, tuple[int, ...]] = {}  # a new item's place in the order: its expanded item's, then its own
        order: collections.deque[int] = collections.deque()  # ids still to hand out, in order
        todo: list[tuple[tuple[int, ...], int]] = []  # taken, not started: a heap by place
        results: dict[int, tuple[Any, int]] = {}  # id → (result, its pickled size)
        attempts: dict[int, int] = {}
        again: collections.deque[int] = collections.deque()
        while True:
            while len(order) < self.max_ahead + self.n_workers and (item := next(pending, _END)) is not _END:
                tasks[next_id] = item
                order.append(next_id)
                heapq.heappush(todo, ((next_id,), next_id))
                next_id += 1
            if not order:
                return
            waiting = len(again) + len(todo) - sum(worker.index is None for worker in self.workers)
            for _ in range(min(waiting, self.n_workers - len(self.workers))):
                self.workers.append(self._start())  # tasks wait (an expansion): grow to n_workers
            buffered = sum(size for _, size in results.values())  # results change only in _wait
            for worker in self.workers:
                if not worker.ready or worker.index is not None:
                    continue
                if again:
                    index = again.popleft()
                elif todo and (todo[0][1] == order[0] or (
                        buffered < self.max_buffered_bytes
                        and todo[0][1] in itertools.islice(order, self.max_ahead))):
                    index = heapq.heappop(todo)[1]
                else:
                    continue
                worker.connection.send((index, attempts.get(index, 1), tasks[index]))
                worker.index, worker.started = index, time.monotonic()
                worker.deadline, worker.beat = worker.started + self.base_timeout, worker.started
            arrived: dict[int, tuple[Any, int]] = {}
            self._wait(arrived)
            for index, (value, size) in arrived.items():
                attempt = attempts.get(index, 1)
                if self.retry is not None and attempt <= self.retries and self.retry(tasks[index], value, attempt):
                    attempts[index] = attempt + 1
                    again.append(index)
                elif expand is not None and (pieces := expand(tasks[index], value)) is not None:
                    position = order.index(index)
                    order.remove(index)
                    for offset, piece in enumerate(pieces):
                        new, next_id = next_id, next_id + 1
                        tasks[new] = piece
                        rank[new] = rank.get(index, (index,)) + (offset,)
                        order.insert(position + offset, new)
                        heapq.heappush(todo, (rank[new], new))
                    del tasks[index]
                    rank.pop(index, None)
                    attempts.pop(index, None)
                else:
                    results[index] = (value, size)
            while order and order[0] in results:
                index = order.popleft()
                attempts.pop(index, None)
                rank.pop(index, None)
                yield tasks.pop(index), results.pop(index)[0]

    def _wait(self, results: dict[int, tuple[Any, int]]) -> None:
        now = time.monotonic()
        soonest = min((min(w.deadline, w.beat + self.stall_timeout) for w in self.workers if w.index is not None),
                      default=now + 1.0)
        handles = [w.connection for w in self.workers] + [w.process.sentinel for w in self.workers]
        multiprocessing.connection.wait(handles, timeout=max(0.0, min(soonest - now, 1.0)))
        for worker in list(self.workers):
            try:
                while worker.connection.poll():
                    data = worker.connection.recv_bytes()
                    kind, payload = pickle.loads(data)
                    if kind == _READY:
                        worker.ready = True
                    elif kind == _UNITS and worker.index is not None:
                        worker.deadline = (worker.started + self.base_timeout + self.per_unit * payload if payload > 0
                                           else float("inf"))
                    elif kind == _BEAT and worker.index is not None:
                        worker.beat = time.monotonic()
                    elif kind == _RESULT:
                        index, value = payload
                        results[index] = (value, len(data))
                        worker.index, worker.deadline = None, float("inf")
            except (EOFError, OSError):
                pass  # the process is gone; handled below
            if not worker.process.is_alive():
                if worker.index is not None:
                    results[worker.index] = (TaskDied("crashed", _exit_description(worker.process.exitcode)), 0)
                elif not worker.ready:
                    raise RuntimeError(f"a worker process exited during start-up ({_exit_description(worker.process.exitcode)})")
                self._replace(worker)
            elif worker.index is not None and time.monotonic() > worker.deadline:
                elapsed = time.monotonic() - worker.started
                results[worker.index] = (TaskDied("timeout", f"killed after {elapsed:.0f} s (its deadline)"), 0)
                self._replace(worker)
            elif worker.index is not None and time.monotonic() - worker.beat > self.stall_timeout:
                results[worker.index] = (TaskDied("timeout", f"killed after {self.stall_timeout:.0f} s without "
                                                             "progress (stalled)"), 0)
                self._replace(worker)

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.connection.send(None)
            except (OSError, BrokenPipeError):
                pass
        for worker in self.workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()

    def __enter__(self) -> "IsolatedPool":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:  # an error or an interrupt: do not wait for the workers' tasks
            for worker in self.workers:
                worker.process.kill()
        self.close()


def _exit_description(exitcode: int | None) -> str:
    if exitcode is None:
        return "the worker process is gone"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the worker process died from {name}"
    return f"the worker process exited with status {exitcode}"
