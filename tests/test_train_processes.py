"""labctl.train.processes: independent runs on a spawn pool, reports forwarded, results in job order."""

from __future__ import annotations

import os
import signal
import time

import pytest

from labctl.errors import WorkerLostError
from labctl.train.processes import run_all


def square_reporting(job: int, report) -> tuple[int, int]:
    """A run: reports its job twice, returns its square and the process that ran it."""
    report(job, "start")
    report(job, "end")
    return job * job, os.getpid()


def refuse_three(job: int, report) -> int:
    if job == 3:
        raise ValueError("job 3 refused")
    return job


@pytest.mark.parametrize("processes", [1, 2])
def test_results_come_in_job_order_and_every_report_reaches_the_parent(processes):
    reports, done = [], []
    results = run_all(square_reporting, [3, 1, 2, 5], processes=processes,
                      on_report=lambda *values: reports.append(values), on_done=lambda d, t: done.append((d, t)))
    assert [square for square, _ in results] == [9, 1, 4, 25]
    workers = {pid for _, pid in results}
    assert (workers == {os.getpid()}) if processes == 1 else (os.getpid() not in workers and len(workers) <= 2)
    assert sorted(reports) == sorted([(job, word) for job in (3, 1, 2, 5) for word in ("start", "end")])
    for job in (3, 1, 2, 5):  # one run's reports keep their order, whatever the interleaving
        assert reports.index((job, "start")) < reports.index((job, "end"))
    assert done == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize("processes", [1, 2])
def test_a_run_s_error_reaches_the_caller(processes):
    with pytest.raises(ValueError, match="job 3 refused"):
        run_all(refuse_three, [1, 2, 3, 4], processes=processes)


def killed_on_two(job: int, report) -> int:
    """A run whose process is killed from outside (as the OOM killer would) when it gets job 2."""
    if job == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)
    return job


def test_a_worker_killed_from_outside_stops_the_runs_with_an_error():
    """mp.Pool replaces a dead worker but never finishes the run it held: without a check the parent
    would wait for ever."""
    started = time.monotonic()
    with pytest.raises(WorkerLostError, match="ended before finishing its run"):
        run_all(killed_on_two, [1, 2, 3, 4], processes=2)
    assert time.monotonic() - started < 30
