"""A process pool that survives its workers: one task per worker at a time, results in input order,
a watchdog per task, and bounded look-ahead.

``multiprocessing.Pool`` waits forever when a worker dies in native code (a segfault in a decoder,
the OOM killer) and buffers every finished result behind a slow one. Here each worker owns a pipe;
the parent waits on the pipes and on the processes' sentinels, so

* a worker that dies mid-task yields :class:`TaskDied` (``crashed``) for that task, and a fresh
  worker takes its place;
* a task past its deadline has its worker killed and yields :class:`TaskDied` (``timeout``). The
  deadline starts at ``base_timeout`` and, when the task reports how much work it holds (a
  video's duration, after probing), becomes ``base_timeout + per_unit × units``;
* at most ``max_ahead`` tasks run or wait ahead of the next result to hand out, so memory stays
  bounded however slow one task is.

Workers are spawned (never forked), run ``initializer(*initargs)`` once, then serve tasks.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

_READY = "ready"
_PROGRESS = "progress"
_RESULT = "result"

_progress_connection = None


def report_units(units: float) -> None:
    """Called inside a task to tell the parent how much work it holds (e.g. seconds of video),
    which sets its deadline. Outside a pool worker it does nothing."""
    if _progress_connection is not None:
        _progress_connection.send((_PROGRESS, float(units)))


@dataclass(frozen=True)
class TaskDied:
    """What a task yields when its worker did not return a result."""

    reason: str
    """``crashed`` (the worker process died) or ``timeout`` (the watchdog killed it)."""
    detail: str


def _worker_main(connection, initializer, initargs, function) -> None:
    global _progress_connection
    _progress_connection = connection
    initializer(*initargs)
    connection.send((_READY, None))
    while True:
        message = connection.recv()
        if message is None:
            return
        index, item = message
        connection.send((_RESULT, (index, function(item))))


@dataclass
class _Worker:
    process: Any
    connection: Any
    ready: bool = False
    index: int | None = None
    started: float = 0.0
    deadline: float = float("inf")


class IsolatedPool:
    def __init__(self, n_workers: int, initializer: Callable, initargs: tuple, function: Callable[[Any], Any], *,
                 base_timeout: float, per_unit: float, max_ahead: int | None = None):
        self.context = multiprocessing.get_context("spawn")
        self.spec = (initializer, initargs, function)
        self.base_timeout, self.per_unit = base_timeout, per_unit
        self.max_ahead = max_ahead or 2 * n_workers
        self.workers = [self._start() for _ in range(n_workers)]

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

    def imap(self, items: Sequence[Any]) -> Iterator[Any]:
        """Results (or :class:`TaskDied`) for ``items``, in order."""
        results: dict[int, Any] = {}
        next_task, next_out = 0, 0
        while next_out < len(items):
            for worker in self.workers:
                if worker.ready and worker.index is None and next_task < len(items) and next_task < next_out + self.max_ahead:
                    worker.connection.send((next_task, items[next_task]))
                    worker.index, worker.started = next_task, time.monotonic()
                    worker.deadline = worker.started + self.base_timeout
                    next_task += 1
            self._wait(results)
            while next_out in results:
                yield results.pop(next_out)
                next_out += 1

    def _wait(self, results: dict[int, Any]) -> None:
        now = time.monotonic()
        soonest = min((w.deadline for w in self.workers if w.index is not None), default=now + 1.0)
        handles = [w.connection for w in self.workers] + [w.process.sentinel for w in self.workers]
        multiprocessing.connection.wait(handles, timeout=max(0.0, min(soonest - now, 1.0)))
        for worker in list(self.workers):
            try:
                while worker.connection.poll():
                    kind, payload = worker.connection.recv()
                    if kind == _READY:
                        worker.ready = True
                    elif kind == _PROGRESS and worker.index is not None:
                        worker.deadline = worker.started + self.base_timeout + self.per_unit * payload
                    elif kind == _RESULT:
                        index, value = payload
                        results[index] = value
                        worker.index, worker.deadline = None, float("inf")
            except (EOFError, OSError):
                pass  # the process is gone; handled below
            if not worker.process.is_alive():
                if worker.index is not None:
                    results[worker.index] = TaskDied("crashed", _exit_description(worker.process.exitcode))
                elif not worker.ready:
                    raise RuntimeError(f"a worker process exited during start-up ({_exit_description(worker.process.exitcode)})")
                self._replace(worker)
            elif worker.index is not None and time.monotonic() > worker.deadline:
                elapsed = time.monotonic() - worker.started
                results[worker.index] = TaskDied("timeout", f"killed after {elapsed:.0f} s (its deadline)")
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
