"""Independent training runs on every core: a process pool that reports back as the runs go (family-blind).

Why processes: training a small device model is a long chain of small tensor
operations that one thread runs fastest (a second torch thread made them 10
to 30 times slower on a shared 2-core machine, measured); independent runs
(restarts, losses, candidate designs) therefore go to separate processes,
one thread each. Each run seeds its own generators, so the results do not
depend on how many processes ran them.

``spawn``, not ``fork``: a forked child of a process that has used torch's
thread pools can deadlock. Workers ignore SIGINT: Ctrl-C reaches the whole
process group, and the parent alone decides; when it stops (an interrupt, a
run's error), the pool is terminated, not waited for.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any, Callable, Sequence, TypeVar

from labctl.errors import WorkerLostError

Job = TypeVar("Job")
Result = TypeVar("Result")
Report = Callable[..., None]
"""What a run calls to report as it goes (e.g. ``on_epoch``); forwarded to the parent's callback."""

_POLL_S = 0.2
_reports: Any = None
"""The worker's queue back to the parent (set by ``_start_worker``), None when nobody listens."""


def available_cores() -> int:
    """Cores this process may run on (its affinity where the platform says, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _start_worker(reports: Any, started: Any) -> None:
    global _reports
    _reports = reports
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started.put(os.getpid())


def _send(*values: Any) -> None:
    if _reports is not None:
        _reports.put(values)


def _ignore(*_values: Any) -> None:
    """The report of a run nobody listens to."""


def _run(function: Callable[[Job, Report], Result], job: Job) -> Result:
    return function(job, _send)


def _forward(reports: Any, on_report: Report | None) -> None:
    while reports is not None and not reports.empty():
        values = reports.get()
        if on_report:
            on_report(*values)


class Workers:
    """A pool of up to ``processes`` worker processes, started on first use and kept for every
    ``run_all`` inside the ``with`` block: a training that runs its candidates in rounds (successive
    halving, then a power sweep) spawns once (a spawn re-imports torch: about 2 s a worker, measured)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: Any = None
        self._reports: Any = None
        self._started: Any = None
        self._workers: set[int] = set()

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._pool is not None:  # terminated, not waited for: the parent alone decides (module docstring)
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def _pool_for(self, jobs: int) -> Any:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._reports = context.SimpleQueue()  # put() writes at once: a finished run's reports are in
            # the pipe before its result (a Queue's feeder thread had lost some, measured in CI)
            self._started = context.SimpleQueue()
            self._pool = context.Pool(min(self.processes, jobs), initializer=_start_worker,
                                      initargs=(self._reports, self._started))
        return self._pool

    def _check_workers(self) -> None:
        """Raise if a worker ended on its own: mp.Pool replaces it but never finishes the run it held, so
        without this a worker killed from outside (the OOM killer, a stray kill) would leave us waiting
        for ever."""
        while not self._started.empty():
            self._workers.add(self._started.get())
        lost = self._workers - {child.pid for child in multiprocessing.active_children()}
        if lost:
            raise WorkerLostError(f"training worker process {min(lost)} ended before finishing its run (killed "
                                  "from outside, or out of memory?); its run is lost, so the training stops here")

    def run_all(self, function: Callable[[Job, Report], Result], jobs: Sequence[Job], *,
                on_report: Report | None = None, on_done: Callable[[int, int], None] | None = None) -> list[Result]:
        """``function(job, report)`` for every job, in job order; on the pool's processes.

        ``function`` and the jobs must pickle (a module-level function; plain data). ``report(...)`` inside a
        run reaches ``on_report`` in this process (runs on different processes interleave); ``on_done(done,
        total)`` follows each finished run. With one process or one job everything runs here, no pool.
        """
        total = len(jobs)
        if self.processes <= 1 or (total <= 1 and self._pool is None):
            results = []
            for done, job in enumerate(jobs, 1):
                results.append(function(job, on_report or _ignore))
                if on_done:
                    on_done(done, total)
            return results
        pool = self._pool_for(total)
        try:
            pending = [pool.apply_async(_run, (function, job)) for job in jobs]
            finished: set[int] = set()
            while len(finished) < total:
                pending[min(set(range(total)) - finished)].wait(_POLL_S)
                _forward(self._reports, on_report)
                self._check_workers()
                for index, run in enumerate(pending):
                    if index not in finished and run.ready():
                        run.get()  # a run's error is raised here, and the pool terminated
                        finished.add(index)
                        if on_done:
                            on_done(len(finished), total)
            _forward(self._reports, on_report)
            return [run.get() for run in pending]
        except BaseException:
            self.__exit__()
            raise


def run_all(function: Callable[[Job, Report], Result], jobs: Sequence[Job], *, processes: int,
            on_report: Report | None = None, on_done: Callable[[int, int], None] | None = None) -> list[Result]:
    """``Workers(processes).run_all(...)`` for one round of runs: a pool for the call alone."""
    with Workers(processes) as workers:
        return workers.run_all(function, jobs, on_report=on_report, on_done=on_done)


__all__ = ["Workers", "available_cores", "run_all"]
