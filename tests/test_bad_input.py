"""Bad input gets one line a lab engineer can act on, and a non-zero exit (issues 3 and 4).

The command line runs in-process (``labctl.cli.main``) against simulated
benches on loopback: missing and corrupt HDF5 files, a characterisation
without fits, weights trained for another die, an unknown data set, a network
that does not fit the die, and bench files that are malformed, name what does
not exist, or point at nothing reachable. Every case must print exactly one
line, ``error: ...``, on stderr (no traceback), name what is wrong, exit
non-zero, and leave every output of the bench off.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.characterise import characterise
from labctl.cli import main
from labctl.families.cmna.sim.bench import SimulatedBench

PADS = ("VDD", "EXT_IN", "MON")


def fails(capsys, *argv: str | Path, match: str) -> str:
    """Run ``labctl argv``; assert a non-zero exit and one ``error:`` line matching ``match``."""
    capsys.readouterr()
    status = main(["--no-progress", *map(str, argv)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def die3(tmp_path_factory):
    """Seed 3: served, characterised, and weights trained for it (briefly: only their die serial matters)."""
    folder = tmp_path_factory.mktemp("die3")
    with SimulatedBench("CMNA-777", seed=3) as sim:
        sim.bench_path = sim.write_bench_file(folder / "bench.toml")
        sim.calibration = folder / "die.h5"
        with Bench.from_file(sim.bench_path) as bench:
            characterise(bench, sim.calibration, n_configs=4)
        sim.weights = folder / "w.h5"
        assert main(["--no-progress", "train", "--calibration", str(sim.calibration), "--dataset", "iris",
                     "--out", str(sim.weights), "--epochs", "1"]) == 0
        yield sim


@pytest.fixture(scope="module")
def die4(tmp_path_factory):
    with SimulatedBench("CMNA-777", seed=4) as sim:
        sim.bench_path = sim.write_bench_file(tmp_path_factory.mktemp("die4") / "bench.toml")
        yield sim


# -- HDF5 files ----------------------------------------------------------------


def test_missing_files(capsys, tmp_path, die3) -> None:
    missing = tmp_path / "nope.h5"
    fails(capsys, "train", "--calibration", missing, "--dataset", "iris", "--out", tmp_path / "w.h5",
          match=r"nope\.h5: no such file")
    fails(capsys, "program", "--bench", die3.bench_path, "--weights", missing, match=r"nope\.h5: no such file")
    fails(capsys, "evaluate", "--bench", die3.bench_path, "--weights", missing, "--dataset", "iris",
          match=r"nope\.h5: no such file")
    assert not (tmp_path / "w.h5").exists()


def test_corrupt_files(capsys, tmp_path, die3) -> None:
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    fails(capsys, "train", "--calibration", corrupt, "--dataset", "iris", "--out", tmp_path / "w.h5",
          match=r"corrupt\.h5: not a readable HDF5 file")
    fails(capsys, "program", "--bench", die3.bench_path, "--weights", corrupt,
          match=r"corrupt\.h5: not a readable HDF5 file")
    # a valid HDF5 file of the wrong kind: the characterisation given as weights
    fails(capsys, "program", "--bench", die3.bench_path, "--weights", die3.calibration, match=r"not a labctl weights file")
    assert not any(die3.channel_of(pad).output_on for pad in PADS)


def test_characterisation_without_fits(capsys, tmp_path, die3) -> None:
    partial = tmp_path / "partial.h5"
    partial.write_bytes(die3.calibration.read_bytes())
    with h5py.File(partial, "r+") as f:
        del f["calibration"]
    fails(capsys, "train", "--calibration", partial, "--dataset", "iris", "--out", tmp_path / "w.h5",
          match=r"partial\.h5: has no /calibration")


def test_weights_for_another_die_are_refused_before_power_up(capsys, die3, die4) -> None:
    for command in (["program"], ["evaluate", "--dataset", "iris"]):
        fails(capsys, *command, "--bench", die4.bench_path, "--weights", die3.weights,
              match=r"trained for die 'CMNA-777-000003', but the bench holds die 'CMNA-777-000004'")
    assert not any(die4.channel_of(pad).output_on for pad in PADS)
    assert die4.die.status()[0] & 1  # never powered up


# -- data sets and networks -------------------------------------------------------


def test_unknown_data_set(capsys, tmp_path, die3) -> None:
    fails(capsys, "train", "--calibration", die3.calibration, "--dataset", "cifar-9000", "--out", tmp_path / "w.h5",
          match=r"unknown data set 'cifar-9000'")
    fails(capsys, "evaluate", "--bench", die3.bench_path, "--weights", die3.weights, "--dataset", "cifar-9000",
          match=r"the weights were trained on 'iris', not on 'cifar-9000'")
    assert not (tmp_path / "w.h5").exists()
    assert not any(die3.channel_of(pad).output_on for pad in PADS)
    assert die3.die.status()[0] & 1  # refused before anything was powered


def test_csv_data_set_with_a_named_label_column(capsys, tmp_path, die3) -> None:
    """Any CSV: header row, numeric features, the class in the column --label-column names; the split is kept
    in the weights, so evaluation needs no --dataset."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    rows = ["species,sepal_l,sepal_w,petal_l,petal_w"]
    rows += [",".join([str(iris.target_names[t]), *map(str, x)]) for x, t in zip(iris.data, iris.target)]
    data = tmp_path / "flowers.csv"
    data.write_text("\n".join(rows) + "\n")
    fails(capsys, "train", "--calibration", die3.calibration, "--dataset", data, "--out", tmp_path / "w.h5",
          "--label-column", "genus", match=r"flowers.csv has no column 'genus' \(columns: species, sepal_l")
    weights = tmp_path / "w.h5"
    assert main(["--no-progress", "train", "--calibration", str(die3.calibration), "--dataset", str(data),
                 "--label-column", "species", "--method", "scratch", "--epochs", "20", "--out", str(weights)]) == 0
    assert "tailored weights for die CMNA-777-000003 on flowers" in capsys.readouterr().out
    assert main(["--no-progress", "evaluate", "--bench", str(die3.bench_path), "--weights", str(weights),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_samples"] == 30 and len(report["per_class_accuracy"]) == 3


@pytest.mark.parametrize("hidden, match", [("9", r"hidden layer 1 asks for 9 neurons, CMNA-777 has 1 to 7"),
                                           ("7,7", r"hidden|layers"), ("0", r"--hidden \(item 1\): Input should be greater than or equal to 1")])
def test_impossible_network_for_the_geometry(capsys, tmp_path, die3, hidden, match) -> None:
    fails(capsys, "train", "--calibration", die3.calibration, "--dataset", "iris", "--out", tmp_path / "w.h5",
          "--hidden", hidden, match=match)


def test_data_set_that_does_not_fit_the_inputs(capsys, tmp_path, die3) -> None:
    fails(capsys, "train", "--calibration", die3.calibration, "--dataset", "digits", "--out", tmp_path / "w.h5",
          match=r"64 features do not fit the 7 input channels")


# -- bench files -------------------------------------------------------------------


def bench_variant(die3, tmp_path: Path, old: str, new: str) -> Path:
    text = die3.bench_path.read_text()
    assert old in text
    path = tmp_path / "bench.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("old, new, match", [
    ("[roles]", "[roles\n", r"not valid TOML"),
    ('supply = "smu_b:2"', 'supply = "smu_b:2"\npump = "smu_a:1"', r"roles\.pump is not a role"),
    ('supply = "smu_b:2"', '', r"roles\.supply is missing"),
    ('monitor = "smu_b:1"', 'monitor = "smu_z:1"', r"roles\.monitor names instrument 'smu_z'"),
    ('monitor = "smu_b:1"', 'monitor = "smu_b"', r"roles\.monitor = 'smu_b' must be INSTRUMENT:CHANNEL"),
    ('monitor = "smu_b:1"', 'monitor = "smu_b:2"', r"roles\.(monitor|supply).*serves two roles"),
    ("[bridge]", "[bridge]\nbaud = 9600", r"bridge\.baud is not a known key"),
])
def test_malformed_bench_file(capsys, tmp_path, die3, old, new, match) -> None:
    bad = bench_variant(die3, tmp_path, old, new)
    for command in (["identify"], ["characterise", "--out", tmp_path / "die.h5"]):
        fails(capsys, *command, "--bench", bad, match=match)
    assert not (tmp_path / "die.h5").exists()


def test_unknown_channel_of_a_known_instrument(capsys, tmp_path, die3) -> None:
    bad = bench_variant(die3, tmp_path, 'source = "smu_a:1"', 'source = "smu_a:3"')
    fails(capsys, "identify", "--bench", bad, match=r"roles\.source: .*2450 has no channel '3'; valid channels: 1")
    fails(capsys, "program", "--bench", bad, "--weights", die3.weights, match=r"roles\.source")
    assert not any(die3.channel_of(pad).output_on for pad in PADS)


def test_missing_bench_file(capsys, tmp_path) -> None:
    fails(capsys, "identify", "--bench", tmp_path / "none.toml", match=r"none\.toml: cannot read it")


@pytest.mark.parametrize("what", ["bridge", "instrument"])
def test_bench_that_points_at_nothing_fails_within_seconds(capsys, tmp_path, die3, what) -> None:
    port = closed_port()
    if what == "bridge":
        bad = bench_variant(die3, tmp_path, die3.bridge_server.url, f"socket://127.0.0.1:{port}")
        match = rf"bridge\.port: .*127\.0\.0\.1:{port}"
    else:
        resource = die3.instrument_servers["smu_b"].resource
        bad = bench_variant(die3, tmp_path, resource, f"TCPIP0::127.0.0.1::{port}::SOCKET")
        match = rf"instruments\.smu_b: .*127\.0\.0\.1::{port}"
    started = time.monotonic()
    fails(capsys, "identify", "--bench", bad, match=match)
    assert time.monotonic() - started < 5.0


# -- checked before any power-up (issue 16) -----------------------------------------


@pytest.mark.parametrize("body, match", [
    ("a,b,label\n1,2,x\nnan,3,y\n2,2,x\n", r"line 3: a is nan: features must be finite numbers"),
    ("a,b,label\n1,2,x\n1,inf,y\n2,2,x\n", r"line 3: b is inf: features must be finite numbers"),
    ("a,b,label\n1,2,x\n1,3,\n2,2,y\n", r"line 3: the class \(label\) is empty"),
])
def test_csv_with_nan_inf_or_empty_class_is_refused(capsys, tmp_path, die3, body, match) -> None:
    data = tmp_path / "data.csv"
    data.write_text(body)
    fails(capsys, "train", "--calibration", die3.calibration, "--dataset", data, "--out", tmp_path / "w.h5",
          match=match)
    assert not (tmp_path / "w.h5").exists()


def test_gate_beyond_the_dies_limit_is_refused_before_power(capsys, tmp_path, die4) -> None:
    fails(capsys, "characterise", "--bench", die4.bench_path, "--out", tmp_path / "die.h5", "--gate-ms", "5000",
          match=r"--gate-ms 5000 is outside the 1 to 1000 ms .*max gate 1000 ms")
    assert not any(die4.channel_of(pad).output_on for pad in PADS)
    assert die4.channel_of("VDD").level["V"] == 0.0  # never powered


def test_recipe_with_a_missing_data_file_is_refused_before_the_bench(capsys, tmp_path, die4) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "x"\npart = "CMNA-777"\n[[steps]]\nkind = "characterise"\n'
                      '[[steps]]\nkind = "train"\ndataset = "gone.csv"\n')
    fails(capsys, "run", recipe, "--bench", die4.bench_path, "--run-dir", tmp_path / "run",
          match=r"r\.toml, line 6: steps\[1\]: data file gone\.csv does not exist")
    assert not (tmp_path / "run").exists()
    assert not any(die4.channel_of(pad).output_on for pad in PADS)


def test_bench_file_with_a_resource_that_is_not_visa(capsys, tmp_path, die4) -> None:
    bench = tmp_path / "bench.toml"
    text = die4.bench_path.read_text()
    resource = re.search(r'resource = "([^"]+)"', text).group(1)
    bench.write_text(text.replace(resource, "192.168.0.5:5025", 1))
    fails(capsys, "identify", "--bench", bench, match=r"instruments\.\w+\.resource '192\.168\.0\.5:5025' is not a VISA "
                                                       r"resource name")
