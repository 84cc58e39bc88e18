"""The build lease: one build at a time writes into a dataset.

A build's driver creates ``_lease.json`` in the dataset (only where none exists:
:meth:`pseudo3d.storage.Storage.create`) before it touches anything, renews it every
:data:`RENEW_S` seconds while it runs and deletes it when it ends. A second build finds the lease
and stops with a message naming the holder, instead of mixing its units with the first one's or
deleting its unfinished files. A lease is stale, and is taken over, when its holder ran on this
host and no longer runs (a build killed here resumes at once), or when it has not been renewed for
:data:`EXPIRE_S` seconds (a build killed on another machine).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field

from pseudo3d.errors import Pseudo3DError
from pseudo3d.schemas.layout import LEASE
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)

RENEW_S = 30.0
EXPIRE_S = 180.0
"""A lease not renewed for this long belongs to a build that stopped."""


@dataclass
class BuildLease:
    """The lease of one build on the dataset at ``storage``; a context manager."""

    storage: Storage
    build: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: str = field(default_factory=lambda: _now())
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    held: bool = False

    def __enter__(self) -> "BuildLease":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lease, or raise :class:`Pseudo3DError` naming the build that holds it."""
        for _ in range(2):
            if self.storage.create(LEASE, self._content()):
                break
            holder = self._holder()
            if holder is not None and not _stale(holder):
                raise Pseudo3DError(
                    f"{self.storage.url}: another build is writing into this dataset (host "
                    f"{holder.get('host')}, process {holder.get('pid')}, since {holder.get('started')}); one build "
                    f"at a time may write into a dataset. If that build has stopped, its lease expires "
                    f"{EXPIRE_S:.0f} s after {holder.get('renewed')}; or delete {self.storage.url_of(LEASE)}")
            log.info("taking over the lease of a build that stopped (%s)", holder)
            self.storage.delete(LEASE)
        else:
            raise Pseudo3DError(f"{self.storage.url}: another build took the dataset's lease at the same time")
        self.held = True
        self._thread = threading.Thread(target=self._renew, name="pseudo3d-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and delete the lease if this build took it and it is still its own."""
        if not self.held:
            return
        self.held = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            holder = self._holder()
            if holder is not None and holder.get("build") == self.build:
                self.storage.delete(LEASE)
        except Exception as exc:  # noqa: BLE001 - the build's own outcome matters more; the lease expires
            log.warning("the build's lease on %s could not be released (%s); it expires in %.0f s",
                        self.storage.url, exc, EXPIRE_S)

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                holder = self._holder()
                if holder is not None and holder.get("build") != self.build:
                    log.error("another build took over this build's lease on %s (this one went %.0f s without "
                              "renewing it): both may now write into the dataset", self.storage.url, EXPIRE_S)
                    return
                self.storage.write_bytes(LEASE, self._content())
            except Exception as exc:  # noqa: BLE001 - a store that hiccups: the next renewal tries again
                log.warning("the build's lease on %s could not be renewed (%s)", self.storage.url, exc)

    def _content(self) -> bytes:
        return json.dumps({"build": self.build, "host": socket.gethostname(), "pid": os.getpid(),
                           "started": self.started, "renewed": _now()}).encode()

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.storage.read_bytes(LEASE))
        except FileNotFoundError:
            return None
        except ValueError:
            return {}  # unreadable: a torn write of a local filesystem that lost power; stale
        return holder if isinstance(holder, dict) else {}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _stale(holder: dict) -> bool:
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    try:
        renewed = dt.datetime.fromisoformat(holder["renewed"])
    except (KeyError, TypeError, ValueError):
        return True
    return (dt.datetime.now(dt.timezone.utc) - renewed).total_seconds() > EXPIRE_S
