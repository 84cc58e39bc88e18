"""Keeping native library chatter (MediaPipe/TFLite/absl write straight to file descriptor 2)
out of the terminal: worker processes send it to the dataset's log file instead."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator


def redirect_process_stderr(path: Path) -> None:
    """Point this process's file descriptor 2 (native code and Python alike) at ``path``
    (appended) for the rest of its life, and log Python records there too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    logging.basicConfig(level=logging.INFO, force=True,
                        format=f"%(asctime)s worker-{os.getpid()} %(levelname)s %(name)s: %(message)s")


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 for the duration of a block (e.g. creating MediaPipe graphs in
    the main process). Python's own ``sys.stderr`` writes are silenced too while it lasts."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
