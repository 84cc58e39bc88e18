"""The isolated worker pool: crashes and hangs cost one task, results stay in order."""

import os
import signal
import time

import pytest

from pseudo3d.pipelines.runners.isolation import IsolatedPool, TaskDied, report_units


def _noop():
    return None


def _task(item):
    kind, value = item
    if kind == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "exit":
        os._exit(3)
    if kind == "hang":
        report_units(0.0)
        time.sleep(60)
    if kind == "slow":
        report_units(10.0)  # 10 units x 0.3 s: a 3 s deadline on top of the base
        time.sleep(1.5)
    return value * 2


def test_crashes_and_hangs_cost_only_their_task():
    items = [("ok", 1), ("crash", 2), ("ok", 3), ("hang", 4), ("exit", 5), ("slow", 6), ("ok", 7)]
    with IsolatedPool(2, _noop, (), _task, base_timeout=1.0, per_unit=0.3) as pool:
        results = list(pool.imap(items))
    assert results[0] == 2 and results[2] == 6 and results[5] == 12 and results[6] == 14
    assert results[1] == TaskDied("crashed", "the worker process died from SIGSEGV")
    assert results[3].reason == "timeout"
    assert results[4] == TaskDied("crashed", "the worker process exited with status 3")


def test_order_is_kept_and_look_ahead_is_bounded():
    items = [("slow", i) if i == 0 else ("ok", i) for i in range(12)]
    with IsolatedPool(2, _noop, (), _task, base_timeout=30.0, per_unit=1.0, max_ahead=3) as pool:
        assert list(pool.imap(items)) == [2 * i for i in range(12)]


@pytest.mark.slow
def test_build_survives_a_crashing_and_a_hanging_input(synthetic_corpus, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from pseudo3d.config import BuildConfig
    from pseudo3d.pipelines.runners.local import build_local
    from pseudo3d.pipelines.sources import resolve_sources

    monkeypatch.setenv("PSEUDO3D_FAULTS", "crash=01_talk;hang=05_talk")
    names = ["00_talk_25fps.mp4", "01_talk_30fps_portrait.mp4", "05_talk_cut.mp4"]
    sources = resolve_sources([str(synthetic_corpus / name) for name in names])
    config = BuildConfig().with_overrides(limits={"timeout_base_s": 5.0})
    report = build_local(sources, tmp_path / "ds", config, workers=2, progress=False, qa_report=False)
    assert report.inputs == 3 and report.ok == 1 and report.failed == 2
    rows = {row["uri"].rsplit("/", 1)[-1]: row for row in pq.read_table(tmp_path / "ds" / "failures.parquet").to_pylist()}
    assert (rows["01_talk_30fps_portrait.mp4"]["stage"], rows["01_talk_30fps_portrait.mp4"]["error"]) == ("worker", "crashed")
    assert (rows["05_talk_cut.mp4"]["stage"], rows["05_talk_cut.mp4"]["error"]) == ("worker", "timeout")
