"""`labctl report` on a TTFS characterisation, whole or interrupted, with the on-chip evaluation beside it.

A full simulated characterisation takes half a minute or more, so the file
here is written through the family's own storage writer
(:class:`CharacterisationWriter`, the layout ``characterise_die`` writes):
parameters drawn around an RCS-S die, readings of steps 1-8 that follow the
fitted laws, and an evaluation record as ``write_records`` writes it (with
the per-pattern labels and TDC codes). The report must carry the file's
numbers (C median, I_LSB, lambda, every neuron), draw readable figures, list
the evaluation's accuracy and energy, and say what a partial file lacks.
The GUI tests (test_ttfs_gui) reuse these files.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from labctl.cli import main
from labctl.errors import DataFileError
from labctl.families.ttfs.characterisation.tables import trace_rows
from labctl.families.ttfs.die_parameters import Measured, NeuronLayer, Polarity, TtfsDieParameters
from labctl.families.ttfs.evaluation import first_spike_classes
from labctl.families.ttfs.report.contents import ladder_model_a, load, row_model_a
from labctl.families.ttfs.report.evaluations import from_record, winner_spike_times
from labctl.families.ttfs.report.page import write_report
from labctl.families.ttfs.storage import CharacterisationWriter, read_parameters

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SERIAL = "RCS-S-000042"
LAYERS = (4, 16, 3)
"""What ``TtfsFamily.reporter`` is to name."""
EXC_LEVELS, INH_LEVELS = (0.0, 0.15, 0.3, 0.4, 0.55, 0.7), (1.4, 1.5, 1.6, 1.7, 1.8)
DC_FIELDS = ("step", "polarity", "matrix", "row", "column", "code", "rail_v", "held_a", "released_a", "synaptic_a")


def _measured(rng: np.random.Generator, n: int, value: float, spread: float, se: float) -> Measured:
    return Measured(value + spread * rng.standard_normal(n), np.full(n, se) * (1 + 0.3 * rng.random(n)))


def parameters(rng: np.random.Generator) -> TtfsDieParameters:
    """An RCS-S die's parameters of typical size (contract 1.6), each with a standard error."""
    layers = tuple(NeuronLayer(_measured(rng, n, 107e-15, 1.5e-15, 0.2e-15), _measured(rng, n, 1.289, 1e-3, 0.8e-3),
                               _measured(rng, n, 0.798, 4e-3, 0.6e-3), _measured(rng, n, 6.0, 1.2, 0.8),
                               _measured(rng, n, 1.01, 0.02, 0.01), _measured(rng, n, 3e-12, 2e-12, 0.05e-12))
                   for n in LAYERS[1:])

    def polarity(i_lsb: float, lam: float, rail: float, pad: float) -> Polarity:
        bits = 2.0 ** np.arange(4) * (1 + 0.015 * rng.standard_normal(4))
        return Polarity(Measured(i_lsb, 4e-12), Measured(bits, np.full(4, 0.01)), Measured(lam, 0.003), 0.05,
                        Measured(rail, 1e-4), pad)

    return TtfsDieParameters("RCS-S", SERIAL, LAYERS, Measured(1.2914, 3e-4), 0.8, Measured(0.0255, 4e-4),
                             Measured(4.8e-5, 2e-6), polarity(1.946e-9, 0.513, 0.3992, 0.4),
                             polarity(1.899e-9, 0.307, 1.6995, 1.7), layers, write_residual_half_width=0.09,
                             extras={"mon_chain_gain": Measured(0.995, 1e-4),
                                     "probe_load_f": Measured(1.1e-15, 0.1e-15)})


def _dc_rows(step: bytes, polarity: int, matrix: int, row: int, code: int, rail: float, current: float) -> tuple:
    return step, polarity, matrix, row, -1, code, rail, current + 1e-6, 1e-6, current


def readings(params: TtfsDieParameters, rng: np.random.Generator) -> tuple[dict, dict]:
    """Raw tables of every step (and the row-lambda fits) that follow the parameters' laws; datasets, attrs."""
    from labctl.families.ttfs.characterisation.tables import DC_DTYPE

    data: dict[str, np.ndarray] = {"raw/monitors": np.array([1.8, 0.8, 0.4, 1.7, 1.2915])}
    attrs: dict[str, dict] = {}
    t = np.linspace(-1e-6, 9e-6, 400)
    for kind, target in (("leak", None), ("kappa", None), ("e_exc", 0.3992), ("e_inh", 1.6995)):
        for layer, neuron in ((1, 0), (2, 1)):
            v = 1.29 + 0.001 * rng.standard_normal(len(t))
            if target is not None:
                v = np.where(t > 0, target + (1.29 - target) * np.exp(-t / 1e-6), v)
            path = f"raw/traces/{'step3' if target else 'step8'}_{kind}_l{layer}_n{neuron}"
            data[path] = trace_rows(t, v)
            attrs[path] = {"layer": layer, "neuron": neuron, "kind": kind, "rows_on": 0}
    dc, ladder = [], []
    for polarity, name, levels in ((1, "excitatory", EXC_LEVELS), (-1, "inhibitory", INH_LEVELS)):
        fits = []
        for m in range(len(LAYERS) - 1):
            for r in range(LAYERS[m] + 1):
                fit = np.array((0.5 + 0.03 * rng.standard_normal(), 0.003, 30e-9 * LAYERS[m + 1]),
                               dtype=[("lam_per_v", "f8"), ("se", "f8"), ("current_a", "f8")])
                fits.append(fit)
                current = row_model_a(params, polarity, fit, np.array(levels))
                dc += [_dc_rows(b"shape", polarity, m, r, 15 * polarity, lv, c) for lv, c in zip(levels, current)]
            codes = np.arange(1, 16)
            current = ladder_model_a(params, polarity, m, codes) * (1 + 0.005 * rng.standard_normal(15))
            ladder += [_dc_rows(b"ladder", polarity, m, LAYERS[m], polarity * c, levels[0], i)
                       for c, i in zip(codes, current)]
        data[f"fits/row_lambda/{name}"] = np.array(fits)
    data["raw/dc_shape"], data["raw/ladder"] = np.array(dc, DC_DTYPE), np.array(ladder, DC_DTYPE)
    for layer in range(1, len(LAYERS)):
        for k in range(LAYERS[layer]):
            data[f"raw/anchors/l{layer}_n{k}/trace"] = trace_rows(t, np.full(len(t), 1.29))
    data["raw/sites"] = np.zeros(3)
    return data, attrs


STEP_ORDER = ("raw/monitors", "raw/traces/step8", "raw/dc_shape", "raw/ladder", "raw/traces/step3", "raw/anchors",
              "raw/sites", "fits/")
"""The order a run writes its readings (characterise._measure), then the fits."""


def evaluation_record(rng: np.random.Generator, n: int = 45) -> dict:
    """``evaluation_<name>.json`` as ``TtfsFamily.write_records`` writes it, plus the per-pattern labels and
    TDC codes (the winners' times per class)."""
    labels = np.arange(n) % 3
    tdc = rng.integers(900, 1800, (n, 3))
    tdc[np.arange(n), labels] -= 600
    tdc[:4, 1] = 300  # four patterns won by output 1 (one of them rightly)
    tdc[5] = 0xFFFF  # no output fired
    predicted = first_spike_classes(tdc)
    confusion = np.zeros((3, 4), np.int64)
    np.add.at(confusion, (labels, np.where(predicted < 0, 3, predicted)), 1)
    return {"on_chip_accuracy": float(np.mean(predicted == labels)), "software_accuracy": 0.956, "n_samples": n,
            "stuck_cells": 0, "rows_programmed": 22, "no_spike_fraction": float(np.mean(predicted < 0)), "ties": 0,
            "energy_per_inference_j": 3.21e-12, "energy_se_j": 0.42e-12, "supply_power_w": 1.2e-3,
            "idle_power_w": 1.2e-3, "dynamic_power_w": 48e-9, "confusion": confusion.tolist(),
            "output_spike_times_ns": [(tdc[tdc[:, k] != 0xFFFF, k] + 0.5).tolist() for k in range(3)],
            "labels": labels.tolist(), "output_tdc": tdc.tolist()}


@functools.cache
def characterised(folder: Path) -> Path:
    """``folder/die.h5``, complete, with ``evaluation_tailored.json`` beside it (once per session and folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    params = parameters(rng)
    data, attrs = readings(params, rng)
    writer = CharacterisationWriter.create(folder / "die.h5", {"part": "RCS-S", "serial": SERIAL,
                                                              "layer_sizes": list(LAYERS)}, "bench text")
    writer.add(data, attrs)
    path = writer.finish(params, {"bench_seconds": 116.4})
    (folder / "evaluation_tailored.json").write_text(json.dumps(evaluation_record(rng)))
    (folder / "evaluation_other_die.json").write_text(json.dumps(evaluation_record(rng) | {"die_serial": "X-1"}))
    return path


@functools.cache
def interrupted(folder: Path, steps: int = 3) -> Path:
    """The partial file of a run stopped after its first ``steps`` steps (MON chain, leakage, DC shape)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    data, attrs = readings(parameters(rng), rng)
    kept = {p: d for p, d in data.items() if any(p.startswith(s) for s in STEP_ORDER[:steps])}
    writer = CharacterisationWriter.create(folder / "die.h5", {"part": "RCS-S", "serial": SERIAL,
                                                              "layer_sizes": list(LAYERS)}, "bench text")
    writer.add(kept, {p: a for p, a in attrs.items() if p in kept})
    writer.abandon()
    return folder / "die.partial.h5"


def shared(tmp_path_factory, name: str) -> Path:
    """A folder every test module of the session finds again (so the files above are written once)."""
    return tmp_path_factory.getbasetemp() / name


@pytest.fixture(scope="module")
def die_h5(tmp_path_factory) -> Path:
    return characterised(shared(tmp_path_factory, "ttfs-die"))


@pytest.fixture(scope="module")
def partial_h5(tmp_path_factory) -> Path:
    return interrupted(shared(tmp_path_factory, "ttfs-interrupted"))


@pytest.fixture(scope="module")
def full_report(die_h5: Path, tmp_path_factory) -> tuple[str, list[Path]]:
    """The complete file's report, written once for the tests that read it: (html, PNG files)."""
    written = write_report(die_h5, tmp_path_factory.mktemp("report"))
    assert written.missing == []
    return written.html_path.read_text(encoding="utf-8"), list(written.paths[1:])


def section(html: str, title: str) -> str:
    """The HTML of one section, from its heading to the next."""
    start = html.index(f"<h2>{title}</h2>")
    end = html.find("<h2>", start + 1)
    return html[start:end if end > 0 else None]


def summary_value(html: str, label: str) -> str:
    return re.search(rf"<td class='l'>{re.escape(label)}</td><td class='l'>([^<]+)</td>", html).group(1)


def assert_readable_png(data: bytes) -> None:
    from matplotlib.image import imread

    assert data.startswith(PNG_MAGIC)
    pixels = imread(io.BytesIO(data))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 800 and pixels[..., :3].std() > 0.05  # drawn, not blank


def test_the_summary_carries_the_files_fits(full_report, die_h5: Path) -> None:
    html, pngs = full_report
    p = read_parameters(die_h5)
    caps = np.concatenate([layer.capacitance_f.value for layer in p.layers])
    summary = section(html, "Summary")
    assert summary_value(summary, "die serial") == SERIAL and summary_value(summary, "bench time") == "116.4 s"
    assert float(summary_value(summary, "C median").removesuffix(" fF")) == pytest.approx(np.median(caps) * 1e15,
                                                                                             rel=1e-4)
    value, se = summary_value(summary, "I_LSB excitatory").removesuffix(" nA").split(" ± ")
    assert float(value) == pytest.approx(1.946, abs=1e-4) and float(se) == pytest.approx(0.004)
    assert summary_value(summary, "lambda_P").startswith("0.3070 ± 0.0030 /V (site spread 5.0%)")
    assert summary_value(summary, "E- (EREV_INH)") == "1699.50 ± 0.10 mV at pad 1.700 V"
    assert "V_REST 1.2915 V" in summary_value(summary, "monitors (READ_MONITORS)")
    assert "7 of 7" in summary_value(summary, "steps measured") and "class='missing'" not in html


def test_every_neuron_and_ladder_bit_is_listed_with_its_error(full_report, die_h5: Path) -> None:
    html, _ = full_report
    p = read_parameters(die_h5)
    table = section(html, "Neurons")
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td><td>([-0-9.]+) ± ([0-9.]+)</td>", table)
    assert len(rows) == sum(LAYERS[1:])
    layer, neuron, c, c_se = rows[-1]
    truth = p.layers[1].capacitance_f
    assert (layer, neuron) == ("2", "2")
    assert float(c) == pytest.approx(truth.value[2] * 1e15, abs=0.051 * truth.se[2] * 1e15)
    assert float(c_se) == pytest.approx(truth.se[2] * 1e15, abs=0.051 * truth.se[2] * 1e15)
    ladders = section(html, "Synapse ladders")
    bits = re.search(r"<td class='l'>inhibitory</td><td>[^<]+</td>((?:<td>[^<]+</td>){4})", ladders)
    shown = [float(v.split(" ± ")[0]) for v in re.findall(r"<td>([^<]+)</td>", bits.group(1))]
    assert shown == pytest.approx(p.inhibitory.bit_weights.value, abs=0.0051)


def test_the_figures_are_written_and_embedded(full_report) -> None:
    html, pngs = full_report
    assert [p.name for p in pngs] == [f"die-report-{t}.png" for t in
                                      ("neurons", "ladder", "dc-shape", "reversal", "evaluation-tailored")]
    for png in pngs:
        assert_readable_png(png.read_bytes())
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert [base64.b64decode(b) for b in embedded] == [p.read_bytes() for p in pngs]  # self-contained


def test_the_evaluation_beside_the_file_is_reported(full_report, die_h5: Path) -> None:
    html, _ = full_report
    record = json.loads((die_h5.parent / "evaluation_tailored.json").read_text())
    table = section(html, "On-chip evaluation")
    assert "other_die" not in html  # a record of another die is not this die's sequel
    row = re.search(r"<td class='l'>tailored</td>((?:<td>[^<]+</td>)+)", table).group(1)
    assert re.findall(r"<td>([^<]+)</td>", row) == [f"{record['on_chip_accuracy']:.1%}", "95.6%", "45", "2.2%", "0",
                                                   "3.21 ± 0.42", "48"]
    assert "right and wrong winners stacked" in section(html, "On-chip evaluation: tailored")


def test_the_winning_outputs_spike_times_per_class() -> None:
    tdc = np.array([[10, 20, 30], [50, 5, 60], [0xFFFF] * 3, [70, 80, 9], [40, 30, 20]])
    spikes = winner_spike_times(np.array([0, 0, 1, 2, 1]), tdc, 3)
    assert spikes.by == "true class"
    assert [t.tolist() for t in spikes.times_ns] == [[10.5, 5.5], [20.5], [9.5]]
    assert [c.tolist() for c in spikes.correct] == [[True, False], [False], [True]]
    record = evaluation_record(np.random.default_rng(0))
    del record["labels"], record["output_tdc"]  # what write_records writes today
    per_output = from_record("naive", record).spikes
    assert per_output.by == "output" and per_output.correct is None
    assert [len(t) for t in per_output.times_ns] == [44, 44, 44]


def test_an_interrupted_run_gives_a_report_naming_what_is_missing(capsys, partial_h5: Path, tmp_path: Path) -> None:
    capsys.readouterr()
    assert main(["--no-progress", "report", str(partial_h5), "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    named = [Path(p) for p in re.fullmatch(r"report: (.+)\n", captured.out).group(1).split(" and ")]
    assert [p.name for p in named] == ["die.partial-report.html", "die.partial-report-dc-shape.png"]
    lines = captured.err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("partial report: ") for line in lines)
    assert "fits missing" in lines[0]
    assert lines[1].endswith("steps not reached (no readings in the file): ladders (step 7), reversal traces "
                             "(step 3), anchors of every neuron (step 4), every site (step 5)")
    html = named[0].read_text(encoding="utf-8")
    for title in ("Neurons", "Synapse ladders", "Reversal potentials"):
        assert "not available" in section(html, title)
    assert "<td class='l'>C median</td>" not in html
    assert "3 of 7" in summary_value(html, "steps measured") and html.count("class='missing'") == 2
    for png in named[1:]:
        assert_readable_png(png.read_bytes())


def test_a_run_stopped_among_the_anchors_names_the_neurons_not_read(tmp_path_factory) -> None:
    partial = interrupted(shared(tmp_path_factory, "ttfs-anchors"), steps=6)
    with h5py.File(partial, "r+") as f:
        for k in range(LAYERS[2]):
            del f[f"raw/anchors/l2_n{k}"]
    assert load(partial).missing[1:] == [
        "steps not reached (no readings in the file): every site (step 5)",
        "anchors of 3 of 19 neurons not read (the run stopped during step 4)"]


def test_other_files_are_refused_in_one_line(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "cmna.h5", "w") as f:
        f.attrs.update({"family": "cmna", "kind": "characterisation"})
    with pytest.raises(DataFileError, match=r"cmna\.h5: not a TTFS characterisation \(family='cmna'"):
        write_report(tmp_path / "cmna.h5")
    with pytest.raises(DataFileError, match="no such file"):
        write_report(tmp_path / "nope.h5")
    CharacterisationWriter.create(tmp_path / "empty.h5", {"part": "RCS-S", "serial": SERIAL}, "").abandon()
    with pytest.raises(DataFileError, match="nothing to report"):
        write_report(tmp_path / "empty.h5")
