"""Test-only: loaded by every Python process the test suite starts (``tests/conftest.py`` puts
this folder first on ``PYTHONPATH``), so spawned workers, Ray workers and CLI subprocesses get the
fault injection of :mod:`pseudo3d_faults` when ``PSEUDO3D_FAULTS`` is set. pseudo3d itself holds
no test hook."""

import os

if os.environ.get("PSEUDO3D_FAULTS"):
    import pseudo3d_faults

    pseudo3d_faults.install()
