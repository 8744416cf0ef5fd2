"""One client per bench (labctl.bench_lock): a second client is refused at once, touching nothing.

- the lock is an ``flock`` per key (bridge port, each instrument resource),
  normalised, with the holder's command line, PID and start time in the file;
- a second process is refused in one line naming the holder, takes nothing
  (every key or none), and a lock left by a process killed with SIGKILL is
  free for the next run at once;
- the Bench takes the lock in ``open()`` before the bridge or any instrument
  is opened (``identify`` too) and lets it go in ``disconnect()``;
- on the command line: a second ``labctl characterise`` (or ``identify``) on
  a bench that a first one is using exits with status 2 and one line, opens
  no connection, and the first run finishes with its normal result; after a
  SIGKILL the next run takes the bench over from the levels it finds;
- a real serial port is opened exclusive.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from labctl import bench_lock
from labctl.bench_file import load_bench_file
from labctl.bench_lock import BenchInUseError, BenchLock, bench_keys, bridge_key, instrument_key
from labctl.drivers.bridge import BridgeLink
from labctl.drivers.bridge_protocol import BridgeError
from labctl.families.cmna.bench import Bench
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.workflow import identify_bench
from test_signals import SHORT_RUN, Watch, all_off, bench_file, finish, measuring, start_cli, wait_for

PORT = "socket://127.0.0.1:5000"
RESOURCE = "TCPIP0::127.0.0.1::5025::SOCKET"
REFUSAL = re.compile(r'bench in use: (bridge|instrument) (\S+) is held by "(.*)" \(PID (\d+)\) since '
                     r"\d\d:\d\d:\d\d; wait for it or stop it")

HOLDER = """\
import sys, time
from labctl.bench_lock import BenchLock, bench_keys, lock_bench
from labctl.bench_file import load_bench_file
if sys.argv[1] == "--bench":
    lock = lock_bench(load_bench_file(sys.argv[2]))
else:
    lock = BenchLock(bench_keys(sys.argv[1], sys.argv[2:])).acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def lock_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "locks"
    monkeypatch.setenv("LABCTL_LOCK_DIR", str(folder))
    return folder


@pytest.fixture
def hold(tmp_path, lock_dir):
    """Start another process holding some keys (``hold(port, *resources)`` or ``hold("--bench", file)``)."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    procs: list[subprocess.Popen] = []

    def start(*args: str | Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        line = proc.stdout.readline()
        assert line.strip() == "held", f"{line}{proc.stderr.read() if proc.poll() is not None else ''}"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def refused(keys) -> BenchInUseError:
    started = time.monotonic()
    with pytest.raises(BenchInUseError) as info:
        BenchLock(keys).acquire()
    assert time.monotonic() - started < 2.0  # at once: the lock is tried, never waited for
    return info.value


# -- the lock ----------------------------------------------------------------------------------


def test_keys_are_normalised() -> None:
    assert bridge_key("socket://LOCALHOST:5000/").key == bridge_key("socket://localhost:5000").key
    assert bridge_key("socket://127.0.0.1:5000?logging=debug").key == bridge_key(PORT).key
    assert bridge_key("socket://127.0.0.1:5001").key != bridge_key(PORT).key
    assert bridge_key("com5").key == bridge_key("COM5").key == "COM5"
    assert instrument_key("TCPIP::127.0.0.1::5025::SOCKET").key == instrument_key(RESOURCE).key
    assert instrument_key("tcpip0::127.0.0.1::5025::socket").key == instrument_key(RESOURCE).key
    assert instrument_key("GPIB::5::INSTR").key == instrument_key("GPIB0::5::INSTR").key
    # one instrument serving two roles is one key; the bridge comes first
    keys = bench_keys(PORT, [RESOURCE, "TCPIP::127.0.0.1::5025::SOCKET", "TCPIP0::127.0.0.1::5026::SOCKET"])
    assert [k.kind for k in keys] == ["bridge", "instrument", "instrument"]
    name = bench_lock.lock_path(bridge_key(PORT), Path("/x")).name
    assert re.fullmatch(r"[0-9a-f]{16}-socket_127_0_0_1_5000\.lock", name), name


def test_a_second_process_is_refused_at_once_naming_the_holder(hold, lock_dir) -> None:
    holder = hold(PORT, RESOURCE)
    error = refused(bench_keys(PORT, [RESOURCE]))
    message = str(error)
    assert "\n" not in message
    match = REFUSAL.fullmatch(message)
    assert match, message
    assert match.group(1, 2) == ("bridge", PORT)
    assert match.group(3) == f"holder.py {PORT} {RESOURCE}" and int(match.group(4)) == holder.pid
    # a client of just one of the instruments is refused as well, naming it
    error = refused([instrument_key("TCPIP::127.0.0.1::5025::SOCKET")])
    assert error.key.kind == "instrument" and error.holder.pid == holder.pid
    # the lock files are one per key, in the lock folder, with the holder inside
    assert len(list(lock_dir.glob("*.lock"))) == 2
    assert bench_lock.holder_of(bridge_key(PORT)).pid == holder.pid


def test_a_refused_client_takes_nothing(hold, lock_dir) -> None:
    hold("socket://127.0.0.1:5999", RESOURCE)  # another bench's bridge, sharing one instrument with ours
    error = refused(bench_keys(PORT, [RESOURCE, "TCPIP0::127.0.0.1::5026::SOCKET"]))
    assert error.key.kind == "instrument" and error.key.address == RESOURCE
    assert bench_lock.holder_of(bridge_key(PORT)) is None  # what it took before the refusal is let go
    assert bench_lock.holder_of(instrument_key("TCPIP0::127.0.0.1::5026::SOCKET")) is None


def test_the_lock_is_re_entrant_in_one_process_and_leaves_no_stale_name(lock_dir) -> None:
    keys = bench_keys(PORT, [RESOURCE])
    outer = BenchLock(keys, command="labctl run recipe.toml --bench b.toml").acquire()
    inner = BenchLock(keys).acquire()  # a step's Bench inside the command's run
    inner.release()
    holder = bench_lock.holder_of(bridge_key(PORT))
    assert holder is not None and holder.pid == os.getpid() and holder.command.startswith("labctl run")
    outer.release()
    assert bench_lock.holder_of(bridge_key(PORT)) is None
    assert all(path.read_text() == "" for path in lock_dir.glob("*.lock"))


def test_a_lock_left_by_a_killed_process_is_free_for_the_next_run(hold, lock_dir) -> None:
    holder = hold(PORT, RESOURCE)
    refused(bench_keys(PORT, [RESOURCE]))
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert "holder.py" in bench_lock.lock_path(bridge_key(PORT)).read_text()  # its name is still there...
    started = time.monotonic()
    with BenchLock(bench_keys(PORT, [RESOURCE]), command="next run"):  # ... but the kernel let the lock go
        assert time.monotonic() - started < 1.0
        assert bench_lock.holder_of(bridge_key(PORT)).command == "next run"


def test_a_real_serial_port_is_opened_exclusive() -> None:
    controller, device = pty.openpty()
    try:
        name = os.ttyname(device)
        first = BridgeLink(name)
        first._connect()
        try:
            with pytest.raises(BridgeError, match="exclusively lock"):
                BridgeLink(name)._connect()
        finally:
            first._drop_link()
        second = BridgeLink(name)
        second._connect()  # free again once the first let go
        second._drop_link()
    finally:
        os.close(controller)
        os.close(device)


# -- the Bench -----------------------------------------------------------------------------------


class Connections:
    """How many connections the bridge and each instrument server accepted."""

    def __init__(self, sim: SimulatedBench) -> None:
        self.counts: dict[str, int] = {"bridge": 0, **dict.fromkeys(sim.instrument_servers, 0)}
        serve = sim.bridge_server._serve

        def bridge(connection):
            self.counts["bridge"] += 1
            return serve(connection)

        sim.bridge_server._serve = bridge
        for name, server in sim.instrument_servers.items():
            server.serve_connection = self._counting(name, server.serve_connection)

    def _counting(self, name, serve):
        def counted(connection):
            self.counts[name] += 1
            return serve(connection)

        return counted

    def total(self) -> int:
        return sum(self.counts.values())


def test_the_bench_is_refused_before_it_opens_anything(hold, tmp_path) -> None:
    with SimulatedBench("CMNA-777", seed=7) as sim:
        path = sim.write_bench_file(tmp_path / "bench.toml")
        connections = Connections(sim)
        watch = Watch(sim)
        holder = hold("--bench", path)
        for attempt in (lambda: Bench.from_file(path).__enter__(), lambda: identify_bench(path)):
            with pytest.raises(BenchInUseError) as info:
                attempt()
            assert REFUSAL.fullmatch(str(info.value)) and f"(PID {holder.pid})" in str(info.value)
        assert connections.total() == 0 and watch.log == [] and sim.bridge_server.requests == 0
        holder.kill()
        holder.wait()
        with Bench.from_file(path) as bench:  # the lock is held while the bench is open...
            other = subprocess.run([sys.executable, "-c", "import sys; from labctl.bench_lock import lock_bench; "
                                    "from labctl.bench_file import load_bench_file; "
                                    "lock_bench(load_bench_file(sys.argv[1]))", str(path)],
                                   capture_output=True, text=True, timeout=60)
            assert other.returncode != 0 and "BenchInUseError: bench in use" in other.stderr
            assert f"(PID {os.getpid()})" in other.stderr
        # ... and let go by disconnect()
        assert bench_lock.holder_of(bridge_key(sim.bridge_server.url)) is None
        assert bench.bridge is None


# -- two command-line clients on one bench ----------------------------------------------------------


@pytest.fixture
def local(tmp_path, lock_dir):
    with SimulatedBench("CMNA-777", seed=5) as sim:
        sim.bench_path = bench_file(sim, tmp_path / "bench.toml")
        sim.connections = Connections(sim)
        sim.watch = Watch(sim)
        yield sim
        assert not sim.die.damaged, sim.die.damage_cause


def hold_mid_run(sim, proc) -> None:
    """Wait until the run measures on a powered die, then hold its next instrument command."""
    wait_for(measuring(sim, sim.watch), proc, what="the first run measuring")
    sim.watch.hold_when = lambda instrument, state: True
    wait_for(sim.watch.held.is_set, proc, what="a held command")


def pads(sim) -> dict:
    return {pad: (sim.channel_of(pad).output_on, dict(sim.channel_of(pad).level)) for pad in ("VDD", "EXT_IN", "MON")}


def test_a_second_labctl_on_a_busy_bench_is_refused_and_the_first_finishes_normally(local, tmp_path) -> None:
    first = start_cli("characterise", "--bench", local.bench_path, "--out", tmp_path / "first.h5", *SHORT_RUN,
                      cwd=tmp_path)
    try:
        hold_mid_run(local, first)
        connections, before = dict(local.connections.counts), pads(local)
        assert before["VDD"][0] and before["MON"][0]
        commands, requests = local.watch.mark(), local.bridge_server.requests
        for args in (("characterise", "--bench", local.bench_path, "--out", tmp_path / "second.h5", *SHORT_RUN),
                     ("identify", "--bench", local.bench_path)):
            second = start_cli(*args, cwd=tmp_path)
            status, out, err = finish(second, timeout=60)
            assert status == 2, f"{status}\n{out}\n{err}"
            assert out == "" and len(err.splitlines()) == 1, err
            line = err.strip().removeprefix("error: ")
            match = REFUSAL.fullmatch(line)
            assert match, err
            assert match.group(1, 2) == ("bridge", local.bridge_server.url) and int(match.group(4)) == first.pid
            assert match.group(3).startswith("labctl --no-progress characterise --bench ")
        # nothing touched: no connection, no command, no request, the same pad states
        assert local.connections.counts == connections and local.watch.mark() == commands
        assert local.bridge_server.requests == requests and pads(local) == before
        assert not (tmp_path / "second.h5").exists() and not (tmp_path / "second.partial.h5").exists()
        assert first.poll() is None
    finally:
        local.watch.release.set()
    status, out, err = finish(first)
    assert status == 0, f"{status}\n{out}\n{err}"
    assert f"characterisation written to {tmp_path / 'first.h5'}" in out
    assert all_off(local) and local.connections.counts["bridge"] == 1


def test_after_a_sigkill_the_next_run_takes_the_bench_over(local, tmp_path) -> None:
    first = start_cli("characterise", "--bench", local.bench_path, "--out", tmp_path / "first.h5", *SHORT_RUN,
                      cwd=tmp_path)
    try:
        hold_mid_run(local, first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        local.watch.release.set()
    finish(first)
    left = pads(local)
    assert left["VDD"][0] and left["VDD"][1]["V"] == pytest.approx(1.8) and left["MON"][0]  # a powered bench
    since = local.watch.mark()
    started = time.monotonic()
    second = start_cli("characterise", "--bench", local.bench_path, "--out", tmp_path / "second.h5", *SHORT_RUN,
                       cwd=tmp_path)
    status, out, err = finish(second)
    assert status == 0, f"{status}\n{out}\n{err}"
    assert f"characterisation written to {tmp_path / 'second.h5'}" in out
    assert time.monotonic() - started < 60
    assert all_off(local)
    local.watch.check_power_down(since)  # taken over at the level it found: VDD never jumped
