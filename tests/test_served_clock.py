"""A served bench's clock never stands still (``labctl.sim.clock``, served mode).

``labctl sim serve`` (a drawn die, or ``--from die.h5``: the twin of a
characterised one) runs in a subprocess; STATUS read twice, 60 ms apart with no
gate between, must show the uptime moving in real time. The clock's rule itself
(served time = max(virtual, wall); a gate is charged on top of the present
time; never backwards; the accounted time kept apart) is checked in-process.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from labctl.families.cmna.link import Bridge
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.workflow import run_characterisation
from labctl.sim.clock import VirtualClock

SEED = 3
PAUSE_S = 0.060
MIN_STEP_MS = 50


@contextmanager
def served(folder: Path, *args: str) -> Iterator[Path]:
    """``labctl sim serve ... --bench-out B`` in a subprocess until the block ends; yields the bench file."""
    bench = folder / "B.toml"
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "sim", "serve", *args, "--bench-out", str(bench)],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            pytest.fail("labctl sim serve printed no serving line within 30 s")
        assert line.startswith("serving"), f"{line!r}\n{proc.stderr.read() if proc.poll() is not None else ''}"
        yield bench
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the command's own way out: KeyboardInterrupt closes the bench
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def bridge_port(bench: Path) -> str:
    return tomllib.loads(bench.read_text())["bridge"]["port"]


@pytest.fixture(scope="module")
def die_h5(tmp_path_factory) -> Path:
    """A short characterisation of a simulated die (2 configurations, 3 levels): enough for a twin."""
    folder = tmp_path_factory.mktemp("served-clock")
    with SimulatedBench("CMNA-777", SEED) as sim:
        bench = sim.write_bench_file(folder / "bench.toml")
        run_characterisation(bench, folder / "die.h5", n_configs=2, setting_overrides={"levels": 3})
    return folder / "die.h5"


@pytest.mark.parametrize("source", ["drawn", "twin"])
def test_served_uptime_moves_in_real_time(source: str, die_h5: Path, tmp_path: Path) -> None:
    args = ("--part", "CMNA-777", "--seed", str(SEED)) if source == "drawn" else ("--from", str(die_h5))
    with served(tmp_path, *args) as bench, Bridge(bridge_port(bench)) as bridge:
        first = bridge.status()
        time.sleep(PAUSE_S)
        second = bridge.status()
    assert second.uptime_ms - first.uptime_ms >= MIN_STEP_MS, (first, second)


def test_served_time_is_the_later_of_virtual_and_wall() -> None:
    clock = VirtualClock(served=True)
    time.sleep(0.05)
    idle = clock.now()
    assert idle >= 0.05, "an idle served clock follows the wall clock"
    clock.advance(2.0)
    charged = clock.now()
    assert idle + 2.0 <= charged < idle + 2.5, "a gate after an idle spell costs its full length"
    time.sleep(0.02)
    assert clock.now() == charged, "virtual time ahead of the wall clock is not pushed further by it"
    assert clock.accounted_s == pytest.approx(2.0), "accounted time holds only what was charged"


def test_served_time_never_runs_backwards() -> None:
    clock = VirtualClock(served=True)
    readings = []
    for k in range(200):
        if k % 3 == 0:
            clock.advance(0.0005)
        if k % 50 == 0:
            time.sleep(0.005)
        readings.append(clock.now())
    assert all(b >= a for a, b in zip(readings, readings[1:]))
    assert clock.accounted_s == pytest.approx(67 * 0.0005)


def test_unserved_clock_stays_purely_virtual() -> None:
    clock = VirtualClock()
    time.sleep(0.02)
    assert clock.now() == 0.0
    clock.advance(0.5)
    assert clock.now() == clock.accounted_s == 0.5


def test_simulated_bench_serves_on_request_and_is_virtual_in_process() -> None:
    with SimulatedBench("CMNA-777", SEED, served=True) as sim:  # what `labctl sim serve` starts
        assert sim.clock.served and sim.clock.accounted_s == 0.0
        time.sleep(0.02)
        before = sim.clock.now()
        assert before >= 0.02
        sim.clock.advance(0.25)
        assert sim.clock.now() >= before + 0.25 and sim.clock.accounted_s == pytest.approx(0.25)
    with SimulatedBench("CMNA-777", SEED) as sim:  # tests, demo, benchmarks: purely virtual, repeatable
        time.sleep(0.02)
        assert sim.clock.now() == 0.0
