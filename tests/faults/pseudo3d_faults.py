"""Fault injection for the test suite, from outside the package.

``PSEUDO3D_FAULTS`` holds ``;``-separated rules:

* ``crash=NAME``, ``kill=NAME``, ``hang=NAME``: the worker handling a source whose identity
  contains NAME dies from SIGSEGV (a native decoder bug), from SIGKILL (the OOM killer), or stops
  responding without a word; ``KIND=NAME:K`` only on the source's first K attempts.
* ``flaky=track:NAME``, ``flaky=write:unit-UUUUUU``: the Beam runner's first attempt at the bundle
  that tracks the source NAME, or writes the unit UUUUUU (once its shards are published, before its
  marker), raises, as a preempted worker would; a marker beside the build log lets the retry
  pass. Local datasets only.

:func:`install` wraps the functions concerned when their modules are imported (at once when they
already are), keeping their names, so that workers unpickling a task by name find the wrapped
function too.
"""

from __future__ import annotations

import functools
import importlib.abc
import os
import signal
import sys
import time
from pathlib import Path


def _rules(kinds):
    for rule in filter(None, os.environ.get("PSEUDO3D_FAULTS", "").split(";")):
        kind, _, target = rule.partition("=")
        if kind in kinds and target:
            yield kind, target


def _inject(source) -> None:
    from pseudo3d.pipelines.runners.isolation import current_attempt

    for kind, target in _rules(("crash", "kill", "hang")):
        name, _, attempts = target.partition(":")
        if attempts and current_attempt() > int(attempts):
            continue
        if name in source.identity:
            if kind in ("crash", "kill"):
                os.kill(os.getpid(), signal.SIGSEGV if kind == "crash" else signal.SIGKILL)
            time.sleep(10 ** 6)  # hang: silent, before probing


def _fail_first_attempt(stage: str, name: str, staging: str) -> None:
    for _, target in _rules(("flaky",)):
        rule_stage, _, rule_name = target.partition(":")
        if rule_stage != stage or not rule_name or rule_name not in name:
            continue
        marker = Path(staging) / f"flaky-{stage}-{rule_name}"
        marker.parent.mkdir(parents=True, exist_ok=True)
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return
        raise RuntimeError(f"injected failure: first attempt at {stage} {name}")


def _patch_local(module) -> None:
    for name in ("_run_source", "_track_source"):
        original = getattr(module, name)

        @functools.wraps(original)
        def task(source, _original=original):
            _inject(source)
            return _original(source)

        setattr(module, name, task)


def _patch_beam(module) -> None:
    track = module._TrackFn.process

    @functools.wraps(track)
    def process(self, element):
        _fail_first_attempt("track", element[1].identity, str(Path(self.log_path).parent))
        return track(self, element)

    module._TrackFn.process = process

    def write_unit(storage, unit, outcomes, config, fingerprint, numerics=None):
        """Fails the first attempt at a chosen unit once its shards are published, leaving them
        behind as a preempted worker would."""
        from pseudo3d.pipelines.shard_writer import UnitWriter

        writer = UnitWriter(storage, unit, config, fingerprint, numerics)
        for outcome in outcomes:
            writer.add(outcome)
        if storage.is_local:
            writer._finish_shard()
            _fail_first_attempt("write", f"unit-{unit.index:06d}", str(storage.local_path("logs")))
        return writer.commit()

    module.write_unit = write_unit


PATCHES = {"pseudo3d.pipelines.runners.local": _patch_local, "pseudo3d.pipelines.runners.beam": _patch_beam}


class _Patcher(importlib.abc.MetaPathFinder):
    """Finds the patched modules as usual, then patches them right after they execute."""

    def find_spec(self, name, path, target=None):
        if name not in PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        execute = spec.loader.exec_module

        def exec_module(module, _execute=execute, _name=name):
            _execute(module)
            PATCHES[_name](module)

        spec.loader.exec_module = exec_module
        return spec


_installed = False


def install() -> None:
    """Patch the fault points in this process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _Patcher())
