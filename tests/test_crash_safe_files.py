"""Crash-safe files: a killed characterisation resumes, and a complete file is never touched without --force.

``labctl characterise`` runs as a subprocess against a simulated bench served
in-process on loopback, and is killed with SIGKILL halfway (nothing of labctl
runs after that: the partial file keeps HDF5's "open for write" flags).
``--resume`` clears them and finishes; the file is then as good as an
uninterrupted run's. A complete ``die.h5`` survives an interrupted re-run,
with or without ``--force``; ``train --out`` and recipes keep the same rules.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pytest

from labctl import files
from labctl.cli import main
from labctl.errors import ConfigError, DataFileError
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.storage import RawTables, file_sha256, load_die_parameters, load_weights, read_raw
from labctl.recipes import parse_recipe, run_recipe

if sys.platform == "win32":
    pytest.skip("SIGKILL is POSIX", allow_module_level=True)

SEED = 21
PADS = ("VDD", "EXT_IN", "MON")


def labctl(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["--no-progress", *map(str, argv)])
    out = capsys.readouterr()
    return status, out.out, out.err


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def done_jobs(raw: RawTables) -> list:
    return [json.loads(j.decode() if isinstance(j, bytes) else j) for j in raw.done["job"]]


def _stopped(proc: subprocess.Popen) -> None:
    """Wait until ``proc`` is stopped (SIGSTOP delivered)."""
    stat = Path(f"/proc/{proc.pid}/stat")
    for _ in range(2000):
        if not stat.exists():
            time.sleep(0.05)
            return
        if stat.read_text().rsplit(")", 1)[1].split()[0] in "tT":
            return
        time.sleep(0.001)


def recorded_configs(partial: Path) -> int:
    """Configurations recorded so far, read while the file is written (SWMR readers cannot follow the
    variable-length strings of ``configs`` and ``done`` in a live file: count the latch-code rows)."""
    try:
        with h5py.File(partial, "r", swmr=True) as f:
            return f["raw/config_codes"].shape[0]
    except (OSError, KeyError):  # being created, or frozen in the middle of a write
        return 0


def kill_halfway(bench: Path, out: Path, *extra: str, configs: int = 12, slice_s: float = 0.03,
                 timeout_s: float = 300, sig: signal.Signals = signal.SIGKILL) -> None:
    """Start ``labctl characterise`` in a subprocess and SIGKILL it once ``configs`` configurations are recorded.

    The writer runs in short slices and is frozen (SIGSTOP) between them while
    the partial file is looked at; it is killed frozen, wherever it was
    (possibly in the middle of an HDF5 write). Another ``sig`` (SIGHUP) is
    delivered as the writer goes on, and labctl shuts down on it.
    """
    partial = files.partial_path(out)
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "--no-progress", "characterise", "--bench", str(bench),
                             "--out", str(out), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            time.sleep(slice_s)
            assert proc.poll() is None, f"the run ended before it was killed: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "the run made no progress"
            proc.send_signal(signal.SIGSTOP)
            _stopped(proc)
            if partial.exists() and recorded_configs(partial) >= configs:
                break
            proc.send_signal(signal.SIGCONT)
    finally:
        proc.send_signal(sig)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig), err.decode()


def snapshot(partial: Path, folder: Path) -> RawTables:
    """The raw tables of a killed partial file, read from a copy (the original keeps its stale flag)."""
    folder.mkdir(exist_ok=True)
    copy = folder / "snapshot.partial.h5"
    shutil.copyfile(partial, copy)
    return read_raw(copy)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run on a fresh simulated die of seed SEED."""
    folder = tmp_path_factory.mktemp("reference")
    with SimulatedBench("CMNA-777", SEED) as sim:
        bench = sim.write_bench_file(folder / "bench.toml")
        assert main(["--no-progress", "characterise", "--bench", str(bench), "--out", str(folder / "die.h5")]) == 0
        seen = [sim.die.truth.seen_a_plus(l) for l in range(sim.die.chip.n_layers)]
    return folder / "die.h5", seen


def test_sigkill_then_resume_is_as_good_as_an_uninterrupted_run(capsys, tmp_path, reference):
    ref_path, seen = reference
    out = tmp_path / "die.h5"
    partial = files.partial_path(out)
    with SimulatedBench("CMNA-777", SEED) as sim:
        bench = sim.write_bench_file(tmp_path / "bench.toml")
        kill_halfway(bench, out)
        assert not out.exists() and partial.exists()
        # the kill left HDF5's "open for write" flag: plain h5py refuses the file
        with pytest.raises(OSError, match="already open for write"):
            h5py.File(partial, "r")
        killed = snapshot(partial, tmp_path / "snapshot")
        assert 0 < sum(j[0].startswith("chain") for j in done_jobs(killed)) < 14
        status, _, err = labctl(capsys, "characterise", "--bench", bench, "--out", out, "--resume")
        assert status == 0, err
    assert out.exists() and not partial.exists()
    assert not list(tmp_path.glob(".*"))  # no temporary or lock file left behind
    # the stale flag was cleared by --resume itself; the run went on from where it was killed
    after = read_raw(out)
    # nothing measured before the kill is lost, and the kill point matches the uninterrupted run's readings
    reference_raw = read_raw(ref_path)
    for table in ("mon", "c2f"):
        n = len(getattr(killed, table))
        assert np.array_equal(getattr(after, table)[:n], getattr(killed, table))
        assert np.array_equal(getattr(after, table)[:n], getattr(reference_raw, table)[:n])
    # every planned run finished exactly once, as in the uninterrupted run
    jobs = Counter(json.dumps(j) for j in done_jobs(after))
    assert max(jobs.values()) == 1
    assert sorted(jobs) == sorted(json.dumps(j) for j in done_jobs(reference_raw))
    # and the calibration agrees with the uninterrupted run's within the analysis' errors
    resumed, uninterrupted = load_die_parameters(out), load_die_parameters(ref_path)
    for l, (a, b) in enumerate(zip(resumed.layers, uninterrupted.layers)):
        z = (a.a_plus - b.a_plus) / np.hypot(a.a_plus_std, b.a_plus_std)
        assert np.all(np.abs(z) < 4), f"layer {l}: z {z}"
        assert np.max(np.abs(a.a_plus / (seen[l] / seen[l].mean()) - 1)) < 0.02
        if np.isfinite(b.a_minus).any():  # a-/a+ of every layer that feeds another
            z = (a.a_minus - b.a_minus) / np.hypot(a.a_minus_std, b.a_minus_std)
            assert np.all(np.abs(z) < 4), f"layer {l}: a- z {z}"


def test_a_complete_file_is_refused_at_once_and_left_byte_identical(capsys, tmp_path, reference):
    ref_path, _ = reference
    out = tmp_path / "die.h5"
    out.write_bytes(ref_path.read_bytes())
    before = sha(out)
    with SimulatedBench("CMNA-777", SEED) as sim:
        bench = sim.write_bench_file(tmp_path / "bench.toml")
        started = time.monotonic()
        status, _, err = labctl(capsys, "characterise", "--bench", bench, "--out", out)
        assert status != 0 and time.monotonic() - started < 5
        assert err.strip() == f"error: {out} exists (a complete characterisation); use --force to replace it, " \
                              "or another --out"
        assert not any(sim.channel_of(pad).output_on for pad in PADS)
        # --resume has nothing to resume
        status, _, err = labctl(capsys, "characterise", "--bench", bench, "--out", out, "--resume")
        assert status != 0 and "nothing to resume" in err and len(err.strip().splitlines()) == 1
    assert sha(out) == before and not files.partial_path(out).exists()


def test_forced_rerun_killed_halfway_leaves_the_earlier_file_usable(capsys, tmp_path, reference):
    ref_path, _ = reference
    out = tmp_path / "die.h5"
    out.write_bytes(ref_path.read_bytes())
    before = sha(out)
    with SimulatedBench("CMNA-777", SEED + 1) as sim:
        bench = sim.write_bench_file(tmp_path / "bench.toml")
        kill_halfway(bench, out, "--force", configs=10)
        # the complete file is untouched and still loads; the new run is in the separate partial file
        assert sha(out) == before
        assert load_die_parameters(out).chip.serial == load_die_parameters(ref_path).chip.serial
        assert files.partial_path(out).exists()
        # a new run without --force would lose the interrupted one: refused
        status, _, err = labctl(capsys, "characterise", "--bench", bench, "--out", out)
        assert status != 0 and "exists (a complete characterisation)" in err
        # finishing it would replace the complete file: --resume needs --force too
        status, _, err = labctl(capsys, "characterise", "--bench", bench, "--out", out, "--resume")
        assert status != 0 and "use --force" in err
        assert sha(out) == before
        # options differing from the stored ones: one line says which are kept, before anything is powered
        status, _, err = labctl(capsys, "characterise", "--bench", bench, "--out", out, "--resume", "--force",
                                "--levels", "9", "--method", "both")
        assert status == 0, err
    assert "--resume keeps the options die.partial.h5 was started with: levels 6 (not 9)" in err
    assert "method" not in err.split("started with:")[1].splitlines()[0]  # the same method: not named
    params = load_die_parameters(out)
    assert params.chip.serial.endswith(f"{SEED + 1:06d}")  # the new die's file replaced the old one
    assert not files.partial_path(out).exists()


def test_sighup_closes_the_partial_file_and_resume_finishes_it(capsys, tmp_path):
    out = tmp_path / "die.h5"
    with SimulatedBench("CMNA-777", SEED + 4) as sim:
        bench = sim.write_bench_file(tmp_path / "bench.toml")
        kill_halfway(bench, out, configs=8, sig=signal.SIGHUP)
        assert not any(sim.channel_of(pad).output_on for pad in PADS)  # the safe shutdown ran
        with h5py.File(files.partial_path(out), "r") as f:  # closed cleanly: no stale flag
            assert "calibration" not in f and len(f["raw/done"]) > 0
        assert not out.exists()
        status, _, err = labctl(capsys, "characterise", "--bench", bench, "--out", out, "--resume")
        assert status == 0, err
    assert load_die_parameters(out).chip.serial.endswith(f"{SEED + 4:06d}")
    assert not files.partial_path(out).exists()


def test_report_reads_a_killed_partial_file(tmp_path):
    from labctl.families.cmna.report.page import write_report

    out = tmp_path / "die.h5"
    with SimulatedBench("CMNA-777", SEED + 2) as sim:
        bench = sim.write_bench_file(tmp_path / "bench.toml")
        kill_halfway(bench, out, configs=9)
    report = write_report(files.partial_path(out))
    assert report.html_path.exists() and any("fits missing" in m for m in report.missing)


def test_train_out_is_not_overwritten_without_force(capsys, tmp_path, reference):
    ref_path, _ = reference
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"earlier weights")
    status, _, err = labctl(capsys, "train", "--calibration", ref_path, "--dataset", "iris", "--out", weights,
                            "--epochs", "1")
    assert status != 0 and err.strip() == f"error: {weights} exists; use --force to replace it, or another --out"
    assert weights.read_bytes() == b"earlier weights"
    status, _, err = labctl(capsys, "train", "--calibration", ref_path, "--dataset", "iris", "--out", weights,
                            "--epochs", "1", "--force")
    assert status == 0, err
    assert load_weights(weights).calibration_sha256 == file_sha256(ref_path)
    status, _, err = labctl(capsys, "train", "--calibration", ref_path, "--dataset", "iris", "--out", weights,
                            "--epochs", "1")
    assert status != 0 and "exists (weights)" in err
    assert not list(tmp_path.glob(".*"))


TWO_CHARACTERISATIONS = """
name = "characterise twice"
part = "CMNA-777"

[[steps]]
kind = "characterise"
configs = 2
linear_range = "off"

[[steps]]
kind = "characterise"
configs = 3
linear_range = "off"

[[steps]]
kind = "train"
dataset = "iris"
epochs = 1
"""


def test_a_recipe_with_two_characterise_steps_writes_two_files(tmp_path):
    from labctl.session import SessionRecorder

    run = tmp_path / "run"
    with SimulatedBench("CMNA-777", SEED + 3) as sim:
        bench = sim.write_bench_file(tmp_path / "bench.toml")
        result = run_recipe(parse_recipe(TWO_CHARACTERISATIONS), bench, run, recorder=SessionRecorder())
        assert result.outcome == "completed"
        # the train step used the nearest characterisation before it: the second
        weights = load_weights(run / "weights_tailored.h5")
        assert weights.calibration_sha256 == file_sha256(run / "die-2.h5")
        with h5py.File(run / "die.h5") as a, h5py.File(run / "die-2.h5") as b, h5py.File(run / "session.h5") as f:
            assert json.loads(a.attrs["parameters"])["n_pairs"] == 2
            assert json.loads(b.attrs["parameters"])["n_pairs"] == 3
            assert f["characterisation"].attrs["parameters"] == a.attrs["parameters"]  # the first, as before
        # the run folder is never overwritten without asking
        before = sha(run / "summary.json")
        with pytest.raises(ConfigError, match="already holds a run"):
            run_recipe(parse_recipe(TWO_CHARACTERISATIONS), bench, run)
        assert sha(run / "summary.json") == before


def test_clear_stale_write_flag_is_only_for_labctl_partial_files(tmp_path):
    # lookup3 hashlittle reference values (Bob Jenkins' lookup3.c driver)
    assert files.lookup3(b"") == 0xDEADBEEF
    assert files.lookup3(b"Four score and seven years ago") == 0x17770551
    assert files.lookup3(b"Four score and seven years ago", 1) == 0xCD628161
    user = tmp_path / "mine.h5"
    with h5py.File(user, "w", libver="latest"):
        pass
    with pytest.raises(DataFileError, match="not a labctl partial file"):
        files.clear_stale_write_flag(user)
    partial = files.partial_path(tmp_path / "die.h5")
    with h5py.File(partial, "w", libver="latest"):
        pass
    before = sha(partial)
    assert files.clear_stale_write_flag(partial) is False  # closed cleanly: nothing to clear, nothing touched
    assert sha(partial) == before
    with files.WriterLock(partial):
        assert files.being_written(partial)
        with pytest.raises(DataFileError, match="being written"):
            files.clear_stale_write_flag(partial)
    assert not files.being_written(partial)


def test_atomic_output_leaves_the_old_file_on_error(tmp_path):
    target = tmp_path / "summary.json"
    files.atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with files.atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
