"""The lab workflow from the command line, as a user runs it (issue 4).

``labctl sim serve`` runs in a subprocess; every step is the ``labctl``
console script in its own subprocess: identify, characterise, train (tailored
and naive), program, evaluate. The files they leave are checked against the
HDF5 layout of issue 4, the characterisation against the simulator's truth
(written by ``--truth-out``), and the on-chip accuracy against the software's.

Two steps need to see the emulated instruments (Ctrl-C halfway through a
characterisation, ``program --keep-powered``): for those the CLI subprocess
runs against a bench file of an in-process ``SimulatedBench`` of the same die.
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from labctl.files import partial_path
from labctl.families.cmna.characterisation.characterise import default_config_count, plan_jobs
from labctl.families.cmna.protocol import StatusFlag
from labctl.families.cmna.storage import file_sha256
from labctl.families.cmna.latch_codes import signed_to_nibbles
from labctl.families.cmna.sim.bench import SimulatedBench
from labctl.families.cmna.sim.truth import DieTruth

SEED = 3
SERIAL = f"CMNA-777-{SEED:06d}"
LABCTL = shutil.which("labctl", path=str(Path(sys.executable).parent)) or "labctl"
PADS = ("VDD", "EXT_IN", "MON")
TRAIN_OPTIONS: tuple[str, ...] = ()
"""Extra `labctl train` options (none: the default command, as a user runs it)."""


def labctl(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([LABCTL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@dataclass
class Served:
    folder: Path
    bench: Path
    truth: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    proc = subprocess.Popen([LABCTL, "sim", "serve", "--part", "CMNA-777", "--seed", str(SEED),
                             "--bench-out", "B.toml", "--truth-out", "T.h5"],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=30)
        assert "bench file" in line and line.strip().endswith(str(folder / "B.toml")), line
        yield Served(folder, folder / "B.toml", folder / "T.h5")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("labctl sim serve did not stop on SIGTERM")


@pytest.fixture(scope="module")
def characterised(served) -> Path:
    out = served.folder / "die.h5"
    result = ok(labctl("--no-progress", "characterise", "--bench", served.bench, "--out", out, cwd=served.folder))
    assert f"characterisation written to {out}" in result.stdout
    return out


@pytest.fixture(scope="module")
def trained(served, characterised) -> dict[str, Path]:
    """Tailored and naive weights (one after the other: training takes both cores)."""
    out = {"tailored": served.folder / "w.h5", "naive": served.folder / "naive.h5"}
    for kind, path in out.items():
        result = ok(labctl("train", "--calibration", characterised, "--dataset", "iris", "--out", path,
                           *TRAIN_OPTIONS, *(["--naive"] if kind == "naive" else []), cwd=served.folder, timeout=300))
        assert f"{kind} weights for die {SERIAL} on iris" in result.stdout
    return out


def test_identify_reports_the_bridge_and_instruments_and_powers_nothing(served) -> None:
    result = ok(labctl("identify", "--bench", served.bench, cwd=served.folder))
    assert f"device  cmna CMNA-777, serial {SERIAL}, layers 7-7-7, 15 weight levels" in result.stdout
    assert "MODEL 2450" in result.stdout and "B2902A" in result.stdout
    # nothing was powered up: STATUS says so in words
    assert "VDD is not within 1.71 to 1.89 V at the pad (unpowered) [SUPPLY_OUT_OF_RANGE]" in result.stdout


def test_characterisation_file_has_the_issue_4_layout(served, characterised) -> None:
    with h5py.File(characterised, "r") as f:
        assert f["die"].attrs["serial"] == SERIAL
        assert f["bench_file"][()].decode() == served.bench.read_text()
        assert len(f["raw/mon"]) > 1000 and len(f["raw/c2f"]) > 50 and len(f["raw/configs"]) > 10
        for l in range(3):
            g = f[f"calibration/layer_{l}"]
            for name in ("a_plus", "a_plus_std", "a_minus", "a_minus_std"):
                ds = g[name]
                assert ds.dtype == np.float64 and ds.shape == (7,), name
                assert "units" in ds.attrs, f"layer_{l}/{name} has no units"
            assert g["a_plus"][()].mean() == pytest.approx(1.0, abs=1e-12)
            assert np.all(g["a_plus_std"][()] > 0)
            assert "scale" in g.attrs
            if l < 2:
                ratio = g["a_minus"][()] / g["a_plus"][()]
                assert np.all((ratio > 0.5) & (ratio < 1.5)) and np.isfinite(g.attrs["scale"])
            else:  # the output layer has no negative synapses: a- is unobservable
                assert np.all(np.isnan(g["a_minus"][()])) and np.all(np.isnan(g["a_minus_std"][()]))
        for name, units in (("bias_gain", "1"), ("bias_offset_a", "A"), ("c2f_gain_hz_per_a", "Hz/A"),
                            ("c2f_dark_hz", "Hz")):
            ds = f[f"calibration/{name}"]
            assert ds.dtype == np.float64 and ds.shape == (7,) and ds.attrs["units"] == units, name
            assert np.all(np.isfinite(ds[()])), name
        a_plus = [f[f"calibration/layer_{l}/a_plus"][()] for l in range(3)]
        c2f_gain = f["calibration/c2f_gain_hz_per_a"][()]
        bias_gain = f["calibration/bias_gain"][()]
    # and it is the die that was served: compare with the truth the server wrote
    truth = DieTruth.load(served.truth)
    for l in range(3):
        seen = truth.seen_a_plus(l)
        assert np.max(np.abs(a_plus[l] / (seen / seen.mean()) - 1)) < 0.02, l
    assert np.max(np.abs(bias_gain / truth.bias_gain - 1)) < 0.03
    # the C2F gain can be known only together with the output somas' absolute gain: compare shapes
    c2f_rel = c2f_gain / truth.c2f_gain_hz_per_a
    assert np.std(c2f_rel / c2f_rel.mean()) < 0.03


def test_weights_files_have_the_issue_4_layout(trained, characterised) -> None:
    for kind, path in trained.items():
        with h5py.File(path, "r") as f:
            for m in range(2):
                codes = f[f"weights/matrix_{m}/codes"]
                assert codes.dtype == np.int8 and codes.shape == (7, 7)
                assert codes[()].min() >= -7 and codes[()].max() <= 7
            enc = f["encoding"]
            assert enc["input_offset"].shape == enc["input_scale"].shape == enc["input_channels"].shape == (4,)
            assert enc["constant_codes"].shape == (7,) and enc["class_outputs"].shape == (3,)
            assert np.all((enc["constant_codes"][()] >= 0) & (enc["constant_codes"][()] <= 4095))
            # 4-7-3 Iris mapped onto the die: weights leave only the 4 feature channels and the channels held at
            # a constant code, and reach only the 3 class outputs, each of which some hidden neuron drives
            inputs, outputs = set(enc["input_channels"][()].tolist()), enc["class_outputs"][()]
            assert len(inputs) == 4 and len(set(outputs.tolist())) == 3
            fed = inputs | set(np.flatnonzero(enc["constant_codes"][()]).tolist())
            m0, m1 = (f[f"weights/matrix_{m}/codes"][()] for m in range(2))
            assert set(np.flatnonzero(np.abs(m0).sum(axis=1)).tolist()) <= fed, (m0, fed)
            assert set(np.flatnonzero(np.abs(m1).sum(axis=0)).tolist()) == set(outputs.tolist()), (m1, outputs)
            assert f.attrs["die_serial"] == SERIAL and f.attrs["dataset"] == "iris"
            assert f.attrs["calibration_sha256"] == file_sha256(characterised)
            # 27 of 30: one sample below the lowest measured (seeds 1-5: 28-30 of 30 tailored, 29 naive)
            assert f.attrs["software_accuracy"] >= 0.9
            assert bool(f.attrs["naive"]) == (kind == "naive")


def test_program_verifies(served, trained) -> None:
    result = ok(labctl("--no-progress", "program", "--bench", served.bench, "--weights", trained["tailored"],
                       cwd=served.folder))
    assert "programmed and verified" in result.stdout


def evaluate(served, weights: Path, *options: str | Path) -> dict:
    result = ok(labctl("evaluate", "--bench", served.bench, "--weights", weights, "--dataset", "iris", "--json",
                       *options, cwd=served.folder))
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def programmed(served, characterised, trained) -> dict:
    """The tailored weights programmed as a lab programs them: with the characterisation (stuck-bit retraining
    and one in-situ round on the training split), evaluated with a run folder (``evaluate --json`` report)."""
    return evaluate(served, trained["tailored"], "--calibration", characterised, "--out-dir", served.folder / "run")


def test_tailored_weights_on_chip_match_the_software(served, trained, programmed) -> None:
    """Programmed with the characterisation, and the run folder gets the confusion matrix and per-class
    accuracy."""
    run, report = served.folder / "run", programmed
    assert report["n_samples"] == 30
    assert report["software_accuracy"] >= 0.9
    # The characterisation and the in-situ round read a noisy die, so the model differs from run to run: 11
    # runs of this module (2026-12-07) gave chip - model 0 samples 7 times, 1 sample 3 times and 2 once
    # (chip 30/30, model 28/30, in a fresh-clone CI); more than 2 of 30 is a model that does not predict the die.
    assert abs(report["on_chip_accuracy"] - report["software_accuracy"]) <= 2 / 30 + 1e-9, report
    assert np.array(report["confusion"]).sum() == 30
    programmed = trained["tailored"].with_name("w-programmed.h5")
    assert programmed.exists(), "the in-situ round's weights are kept next to the trained ones"
    record = json.loads((run / "evaluation_w.json").read_text())
    assert record["on_chip_accuracy"] == report["on_chip_accuracy"] and record["in_situ_rounds"] == 1
    assert record["class_names"] == ["setosa", "versicolor", "virginica"]
    assert np.allclose(record["per_class_accuracy"], np.diag(record["confusion"]) / np.sum(record["confusion"], 1))
    rows = (run / "confusion_w.csv").read_text().splitlines()
    assert rows[0] == "true \\ predicted,setosa,versicolor,virginica" and len(rows) == 4


def test_tailored_weights_do_at_least_as_well_as_naive_ones_on_chip(served, trained, programmed) -> None:
    """Both on the same die; the tailored weights as a lab programs them (``programmed``), whose on-chip accuracy
    ``test_tailored_weights_on_chip_match_the_software`` holds to the software's."""
    naive = evaluate(served, trained["naive"])
    assert naive["n_samples"] == 30
    # tailoring never loses against naive weights; seed 3 is the die where naive weights do best: measured
    # 29-30 of 30 tailored (12 runs) against 28-29 naive (18 runs); on seeds 1, 2, 4, 5 tailored wins by 5-8
    assert programmed["on_chip_accuracy"] >= naive["on_chip_accuracy"], (
        f"die {SERIAL}: tailored on chip {programmed['on_chip_accuracy']:.1%}, naive on chip "
        f"{naive['on_chip_accuracy']:.1%} (naive in software {naive['software_accuracy']:.1%})")


# -- steps that need to see the instruments: an in-process bench of the same die ----------------


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    with SimulatedBench("CMNA-777", seed=SEED) as sim:
        sim.bench_path = sim.write_bench_file(tmp_path_factory.mktemp("local") / "bench.toml")
        yield sim
        assert not sim.die.damaged, sim.die.damage_cause


def _mon_rows(path: Path) -> int:
    """Rows of /raw/mon so far, read while another process writes (SWMR); 0 while not readable yet."""
    try:
        with h5py.File(path, "r", swmr=True) as f:
            return len(f["raw/mon"])
    except (OSError, KeyError):
        return 0


def test_ctrl_c_halfway_keeps_the_readings_and_turns_everything_off(local) -> None:
    out = local.bench_path.parent / "interrupted.h5"
    partial = partial_path(out)  # what a characterisation writes until it is complete
    proc = subprocess.Popen([LABCTL, "--no-progress", "characterise", "--bench", str(local.bench_path),
                             "--out", str(out)], cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    seen = 0
    while seen < 1000 and proc.poll() is None and time.monotonic() < deadline:
        seen = _mon_rows(partial)
        time.sleep(0.01)
    assert proc.poll() is None, "characterisation finished before it could be interrupted"
    assert seen >= 1000  # about half of the ~2000 MON readings of a CMNA-777 run
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, f"{stdout}\n{stderr}"
    assert "interrupted" in stderr
    assert all(not local.channel_of(pad).output_on for pad in PADS)
    assert not out.exists()  # an interrupted run never becomes --out
    with h5py.File(partial, "r") as f:  # a valid file, not in SWMR any more, with every reading taken
        mon = f["raw/mon"][()]
        assert len(mon) >= seen and "calibration" not in f
        assert np.all(np.isfinite(mon["current_a"])) and np.all(np.diff(mon["time_s"]) >= 0)
        kinds = {k.decode() for k in f["raw/configs"]["kind"]}
        done = len(f["raw/done"])
    chip = local.die.chip
    planned = len(plan_jobs(chip, "both", default_config_count(chip.layer_sizes), seed=0, layer_knees=True))
    assert {"dark", "reference"} <= kinds and 1 <= done < planned  # halfway: some runs finished, not all


def test_program_keep_powered_leaves_vdd_on_and_the_weights_in_the_latches(local, trained) -> None:
    ok(labctl("--no-progress", "program", "--bench", local.bench_path, "--weights", trained["tailored"],
              "--keep-powered", cwd=local.bench_path.parent))
    vdd = local.channel_of("VDD")
    assert vdd.output_on and vdd.level["V"] == pytest.approx(1.8)
    assert not local.channel_of("EXT_IN").output_on and not local.channel_of("MON").output_on
    flags = local.die.status()[0]
    assert not flags & (StatusFlag.SUPPLY_OUT_OF_RANGE | StatusFlag.LATCHES_UNWRITTEN)
    with h5py.File(trained["tailored"], "r") as f:
        codes = [f[f"weights/matrix_{m}/codes"][()] for m in range(2)]
    assert not local.die.truth.stuck_bits  # so every latch must hold exactly what was programmed
    for m, c in enumerate(codes):
        assert np.array_equal(local.die.read_latches(m, 0, 7), signed_to_nibbles(c))
    # the next command takes the kept supply over and, at its end, ramps everything off
    report = json.loads(ok(labctl("evaluate", "--bench", local.bench_path, "--weights", trained["tailored"],
                                  "--dataset", "iris", "--json", cwd=local.bench_path.parent)).stdout)
    assert report["n_samples"] == 30
    assert all(not local.channel_of(pad).output_on for pad in PADS)
