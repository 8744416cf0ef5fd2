"""The TTFS lab workflow from the command line, as a user runs it on an RCS-S die (issue 15).

``labctl sim serve --part RCS-S`` runs in a subprocess and every step is the
``labctl`` console script in its own subprocess: identify, characterise,
train (circuit-trained ``exact`` and the ``mapped`` baseline), program,
evaluate. The numbers checked are the seed's claims on one die: circuit
training classifies Iris's 45 test samples on chip as the model predicted,
the mapped ANN loses at least 3 points to it, and energy per inference is
measured with its error.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import h5py
import pytest

from test_end_to_end import LABCTL, labctl, ok

SEED = 4
SERIAL = f"RCS-S-{SEED:06d}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ttfs_e2e")
    proc = subprocess.Popen([LABCTL, "sim", "serve", "--part", "RCS-S", "--seed", str(SEED), "--bench-out", "B.toml"],
                            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "bench file" in line and line.strip().endswith(str(folder / "B.toml")), line
        yield folder
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def trained(served):
    """characterise, then train exact and mapped codes for this die (about a minute)."""
    ok(labctl("characterise", "--bench", "B.toml", "--out", "die.h5", cwd=served, timeout=300))
    for name, method in (("circuit", "exact"), ("mapped", "mapped")):
        ok(labctl("train", "--calibration", "die.h5", "--dataset", "iris", "--method", method, "--out",
                  f"{name}.h5", cwd=served, timeout=300))
    return served


def test_identify_names_the_die_and_every_role(served):
    out = ok(labctl("identify", "--bench", "B.toml", cwd=served)).stdout
    assert f"serial {SERIAL}" in out and "layers 4-16-3" in out
    for role in ("supply", "threshold", "rev_exc", "rev_inh", "probe", "sync"):
        assert f"role    {role}" in out


def test_characterisation_file_is_complete_for_this_die(trained):
    with h5py.File(trained / "die.h5", "r") as f:
        assert f.attrs["family"] == "ttfs" and f.attrs["serial"] == SERIAL and f.attrs["complete"]


def test_weights_record_the_task_and_its_encoding(trained):
    with h5py.File(trained / "circuit.h5", "r") as f:
        assert f.attrs["serial"] == SERIAL and f.attrs["method"] == "exact" and f.attrs["dataset"] == "iris"
        assert not f["encoding"].attrs["larger_earlier"]  # Iris's default: the smallest value spikes first


def test_program_writes_and_verifies_every_row(trained):
    out = ok(labctl("program", "--bench", "B.toml", "--weights", "circuit.h5", cwd=trained)).stdout
    assert f"die {SERIAL}" in out and "0 cells hold another code" in out


def test_circuit_training_beats_the_mapped_ann_on_chip(trained):
    """Exact circuit training: at least 42 of 45 on chip, within 2 samples of the model; the mapped ANN at least
    3 points below it on the same die (seed 003: 97.78 % against 93.33 %). Energy per inference is a few pJ
    (contract 3.5) with a standard error under 5 %."""
    circuit = json.loads(ok(labctl("evaluate", "--bench", "B.toml", "--weights", "circuit.h5", "--json",
                                   cwd=trained)).stdout)
    mapped = json.loads(ok(labctl("evaluate", "--bench", "B.toml", "--weights", "mapped.h5", "--json",
                                  cwd=trained)).stdout)
    assert circuit["n_samples"] == mapped["n_samples"] == 45
    assert circuit["on_chip_accuracy"] >= 42 / 45
    assert abs(circuit["on_chip_accuracy"] - circuit["software_accuracy"]) <= 2 / 45 + 1e-9
    assert circuit["on_chip_accuracy"] - mapped["on_chip_accuracy"] >= 0.03
    assert circuit["stuck_cells"] == 0 and circuit["no_spike_fraction"] < 0.05
    assert 1e-12 < circuit["energy_per_inference_j"] < 20e-12
    assert circuit["energy_se_j"] < 0.05 * circuit["energy_per_inference_j"]


def test_weights_for_another_die_are_refused_in_one_line(trained):
    other = trained / "other_die.h5"
    shutil.copy(trained / "circuit.h5", other)
    with h5py.File(other, "r+") as f:
        f.attrs["serial"] = "RCS-S-000999"
    result = labctl("evaluate", "--bench", "B.toml", "--weights", other, "--json", cwd=trained)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "RCS-S-000999" in lines[0] and SERIAL in lines[0], result.stderr
