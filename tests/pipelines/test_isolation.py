"""The isolated worker pool: crashes and hangs cost one task, results stay in order."""

import os
import signal
import time

import pytest

from pseudo3d.pipelines.runners.isolation import IsolatedPool, TaskDied, current_attempt, report_progress, report_units


def _noop():
    return None


def _task(item):
    kind, value = item
    if kind == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "exit":
        os._exit(3)
    if kind == "hang":
        report_units(1.0)  # 1 unit x 0.3 s: a 1.3 s deadline
        time.sleep(60)
    if kind == "slow":
        report_units(10.0)  # 10 units x 0.3 s: a 3 s deadline on top of the base
        time.sleep(1.5)
    if kind == "killed_once" and current_attempt() == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer sends
    if kind == "odd":
        return "odd" if value % 2 else value * 2
    if kind == "split":
        return "split"
    if kind == "piece" and value == (2, 0):
        time.sleep(1.0)  # the first piece finishes last
    if kind in ("beating", "stalling"):
        report_units(0.0)  # a length nobody declared: only the stall watch applies
        for _ in range(16 if kind == "beating" else 3):
            report_progress()
            time.sleep(0.25)
        if kind == "stalling":
            time.sleep(60)
    return value * 2


def _logged(item):
    """Writes when it starts (and, for the slow one, when it ends) into the folder it is given."""
    folder, index, big = item
    with open(f"{folder}/started-{index}", "w"):
        pass
    if not big:
        time.sleep(3.0)
        with open(f"{folder}/slow-ended", "w"):
            pass
        return b""
    return b"x" * (1 << 20)


def _meet(item):
    """A chunk that waits (up to 30 s) until its sibling has started too: both finish only when
    they run at once, on two workers."""
    kind, (folder, index) = item
    if kind == "long":
        return "long"
    with open(f"{folder}/started-{index}", "w"):
        pass
    deadline = time.monotonic() + 30.0
    while not all(os.path.exists(f"{folder}/started-{other}") for other in (0, 1)):
        if time.monotonic() > deadline:
            return "alone"
        time.sleep(0.05)
    return os.getpid()


def test_a_single_long_item_starts_the_other_workers_for_its_pieces(tmp_path):
    def expand(item, result):
        return [("chunk", (str(tmp_path), k)) for k in (0, 1)] if result == "long" else None

    with IsolatedPool(2, _noop, (), _meet, base_timeout=60.0, per_unit=1.0, expand=expand, start_workers=1) as pool:
        assert len(pool.workers) == 1
        results = [result for _, result in pool.imap([("long", (str(tmp_path), None))])]
        assert len(pool.workers) == 2
    assert "alone" not in results and len(set(results)) == 2  # two processes, at once


def test_crashes_and_hangs_cost_only_their_task():
    items = [("ok", 1), ("crash", 2), ("ok", 3), ("hang", 4), ("exit", 5), ("slow", 6), ("ok", 7)]
    with IsolatedPool(2, _noop, (), _task, base_timeout=1.0, per_unit=0.3) as pool:
        results = [result for _, result in pool.imap(items)]
    assert results[0] == 2 and results[2] == 6 and results[5] == 12 and results[6] == 14
    assert results[1] == TaskDied("crashed", "the worker process died from SIGSEGV")
    assert results[3].reason == "timeout"
    assert results[4] == TaskDied("crashed", "the worker process exited with status 3")


def test_a_task_that_gets_on_is_never_killed_and_one_that_stalls_is():
    items = [("beating", 1), ("stalling", 2)]
    with IsolatedPool(2, _noop, (), _task, base_timeout=1.0, per_unit=0.3, stall_timeout=3.0) as pool:
        results = [result for _, result in pool.imap(items)]
    assert results[0] == 2  # 4 s of work with an unknown length: past the base timeout, never silent
    assert results[1] == TaskDied("timeout", "killed after 3 s without progress (stalled)")


def test_no_new_task_starts_while_buffered_results_pass_the_byte_limit(tmp_path):
    items = [(str(tmp_path), 0, False)] + [(str(tmp_path), index, True) for index in range(1, 9)]
    with IsolatedPool(2, _noop, (), _logged, base_timeout=30.0, per_unit=1.0, max_ahead=10,
                      max_buffered_bytes=1.5 * (1 << 20)) as pool:
        results = [result for _, result in pool.imap(items)]
    assert [len(result) for result in results] == [0] + [1 << 20] * 8
    ended = (tmp_path / "slow-ended").stat().st_mtime
    started_meanwhile = sorted(int(path.name.split("-")[1]) for path in tmp_path.glob("started-*")
                               if path.stat().st_mtime < ended)
    assert started_meanwhile == [0, 1, 2]  # two 1 MiB results waiting pass 1.5 MiB: the third waits


def test_order_is_kept_and_look_ahead_is_bounded():
    items = [("slow", i) if i == 0 else ("ok", i) for i in range(12)]
    with IsolatedPool(2, _noop, (), _task, base_timeout=30.0, per_unit=1.0, max_ahead=3) as pool:
        assert [result for _, result in pool.imap(items)] == [2 * i for i in range(12)]


def test_items_are_taken_from_an_iterator_only_as_far_ahead_as_work_may_start():
    """A build hands its sources over as a generator: the pool takes at most ``max_ahead`` plus
    one per worker past the item being handed out, so a million sources never exist at once."""
    taken = []

    def items():
        for value in range(40):
            taken.append(value)
            yield ("ok", value)

    with IsolatedPool(2, _noop, (), _task, base_timeout=30.0, per_unit=1.0, max_ahead=3) as pool:
        pairs = pool.imap(items())
        for position, (item, result) in enumerate(pairs):
            assert item == ("ok", position) and result == 2 * position
            assert len(taken) <= position + 1 + 3 + 2
    assert len(taken) == 40


def test_transient_results_are_retried_in_place_and_permanent_ones_are_not():
    calls = []

    def retry(item, result, attempt):
        calls.append((item, result, attempt))
        return isinstance(result, TaskDied)

    items = [("ok", 1), ("killed_once", 2), ("crash", 3), ("odd", 5), ("ok", 6)]
    with IsolatedPool(2, _noop, (), _task, base_timeout=30.0, per_unit=1.0, retries=2, retry=retry) as pool:
        results = [result for _, result in pool.imap(items)]
    assert results[:2] == [2, 4] and results[3:] == ["odd", 12]  # in order, the killed task's retry included
    assert results[2] == TaskDied("crashed", "the worker process died from SIGSEGV")
    retried = [(item, attempt) for item, result, attempt in calls if isinstance(result, TaskDied)]
    assert sorted(retried) == [(("crash", 3), 1), (("crash", 3), 2), (("killed_once", 2), 1)]
    # a crash on every attempt is asked about twice (retries=2) and then handed out; others once
    assert sorted(item for item, result, attempt in calls if not isinstance(result, TaskDied)) == [
        ("killed_once", 2), ("odd", 5), ("ok", 1), ("ok", 6)]


def test_expanded_results_take_their_item_s_place_in_the_order():
    def expand(item, result):
        return [("piece", (item[1], k)) for k in range(3)] if result == "split" else None

    # Two items expand at about the same time: the later one's pieces must not overtake the first's.
    items = [("split", 2), ("split", 3), ("ok", 4), ("crash", 5)]
    with IsolatedPool(2, _noop, (), _task, base_timeout=30.0, per_unit=1.0, max_ahead=2, expand=expand) as pool:
        pairs = list(pool.imap(items))
    pieces = [("piece", (value, k)) for value in (2, 3) for k in range(3)]
    assert [item for item, _ in pairs] == [*pieces, ("ok", 4), ("crash", 5)]
    assert [result for _, result in pairs][:7] == [*(2 * piece[1] for piece in pieces), 8]
    assert pairs[7][1] == TaskDied("crashed", "the worker process died from SIGSEGV")


@pytest.mark.slow
def test_build_survives_a_crashing_and_a_hanging_input(synthetic_corpus, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from pseudo3d.config import BuildConfig
    from pseudo3d.pipelines.runners.local import build_local
    from pseudo3d.pipelines.sources import resolve_sources

    monkeypatch.setenv("PSEUDO3D_FAULTS", "crash=01_talk;hang=05_talk")
    names = ["00_talk_25fps.mp4", "01_talk_30fps_portrait.mp4", "05_talk_cut.mp4"]
    sources = resolve_sources([str(synthetic_corpus / name) for name in names])
    config = BuildConfig().with_overrides(limits={"timeout_base_s": 5.0, "transient_retries": 0})  # retries: test_retry.py
    report = build_local(sources, tmp_path / "ds", config, workers=2, progress=False, qa_report=False)
    assert report.inputs == 3 and report.ok == 1 and report.failed == 2
    rows = {row["source"].rsplit("/", 1)[-1]: row for row in pq.read_table(tmp_path / "ds" / "failures").to_pylist()}
    assert (rows["01_talk_30fps_portrait.mp4"]["stage"], rows["01_talk_30fps_portrait.mp4"]["error"]) == ("worker", "crashed")
    assert (rows["05_talk_cut.mp4"]["stage"], rows["05_talk_cut.mp4"]["error"]) == ("worker", "timeout")
