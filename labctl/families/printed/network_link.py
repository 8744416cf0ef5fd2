"""Applying test patterns to a printed network and reading its class outputs and power (printed-bench.md 8.2).

A printed network cannot be programmed; verifying it means driving its inputs
with the test rows and reading what its output cells say. The run follows 6.3
exactly: identification and D-pad proof before the rails (a network stops on
any pad that does not answer), rail group 1 with compliance
min(100 mA, 2 mA x cells), the S-pad proof of 6.2 with the inputs still at
0 V, then the bias (1.000 V) and the patterns. Per pattern: every input
setpoint at full precision, 10 ms (the first output channel's delay), the
class outputs in one scan; with power, the shunts of the inputs and the bias
and both rail currents, and ``P = sum V_pad I + V_DD I_DD + V_SS I_SS`` (1.8,
4.3). ``retarget`` re-sets each input once to ``target + V_sh`` so the pad
sits at the target (4.3, optional).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labctl.drivers.keysight_34980a import sense_channel, shunt_channel
from labctl.errors import ConfigError, SafetyError
from labctl.families.printed.bench import (
    CIRCUIT_INPUT_V,
    FAST_NPLC,
    PrintedBench,
    StartReport,
)
from labctl.families.printed.bench_file import NETWORK_RAIL_GROUP
from labctl.families.printed.layout import pad_number
from labctl.families.printed.printable import BIAS_V
from labctl.families.seam import Progress

S_AGREE_ABS_V = 5e-3
S_AGREE_REL = 0.06
"""An S pad answers if its 10 Mohm and > 10 Gohm readings agree within 5 mV + 6 % (6.2)."""
S_LOW_V = 0.020
S_PROBE_V = 0.5
FLOATING_REL = 0.01
"""A floating pad repeats the previous reading within 1 % at > 10 Gohm (6.2)."""


@dataclass(frozen=True)
class NetworkPads:
    """The pads of a print job that the link uses, in the order the data needs them (3.1)."""

    inputs: tuple[str, ...]
    """D pad of x.0, x.1, ... in input order."""
    bias: str
    outputs: tuple[str, ...]
    """S pad of each class, in class order."""
    proven: tuple[str, ...]
    """S pads proven before the patterns: outputs and probes (not probe-hiz, 6.2)."""


def network_pads(job) -> NetworkPads:
    """Input, bias and class-output pads of a :class:`~labctl.families.printed.print_job.PrintJob`."""
    inputs = sorted((p for p in job.pads if p.role == "input"), key=lambda p: int(p.net.split(".")[1]))
    bias = next((p.pad for p in job.pads if p.role == "bias"), None)
    outputs = tuple(job.pad_of(net) for net in job.classes)
    if bias is None or any(pad is None for pad in outputs):
        raise ConfigError(f"print job {job.job}: needs a bias pad and a pad for every class output (J7)")
    proven = tuple(p.pad for p in job.pads if p.role in ("output", "probe"))
    return NetworkPads(tuple(p.pad for p in inputs), bias, outputs, proven)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NetworkReadings:
    """What the patterns produced; the power fields are None without ``with_power``."""

    outputs_v: np.ndarray
    """(n, classes) class output voltages."""
    power_w: np.ndarray | None
    """(m,) the sample's power (1.8) of the first m patterns, those measured with power (m = n with_power)."""
    input_currents_a: np.ndarray | None
    """(n, inputs) shunt currents, positive into the pad."""
    input_pad_v: np.ndarray | None
    """(n, inputs) the pad voltages the sample saw (4.3)."""
    bias_current_a: np.ndarray | None
    rail_currents_a: np.ndarray | None
    """(n, 2) I_DD, I_SS (positive out of the source)."""
    start: StartReport
    host_wait_s: float

    @property
    def predictions(self) -> np.ndarray:
        """The class each pattern selects: the largest output (8.2)."""
        return np.argmax(self.outputs_v, axis=1)


def _checked_rows(rows: np.ndarray, n_inputs: int) -> np.ndarray:
    """Refuse rows that cannot be applied, in one line, before anything is opened (4.4)."""
    data = np.asarray(rows, dtype=float)
    if data.ndim != 2 or data.shape[1] != n_inputs:
        raise ConfigError(f"test rows have shape {data.shape}; the network has {n_inputs} inputs")
    if not np.all(np.isfinite(data)):
        raise ConfigError("test rows hold a value that is not a finite number")
    if np.any(np.abs(data) > CIRCUIT_INPUT_V):
        worst = float(data.flat[np.argmax(np.abs(data))])
        raise SafetyError(f"test rows hold {worst!r} V, outside the inputs' operating range "
                          f"+-{CIRCUIT_INPUT_V} V (4.4): nothing sent")
    return data


def prove_sense_pads(bench: PrintedBench, pads: tuple[str, ...]) -> None:
    """6.2: each output/probe pad read at 10 Mohm and at > 10 Gohm; SafetyError naming the first that fails."""
    if not pads:
        return
    channels = [sense_channel(pad_number(p, "S")) for p in pads]
    low_z = bench.read_volts(channels, FAST_NPLC, high_impedance=False)
    high_z = bench.read_volts(channels, FAST_NPLC)
    for pad, a, b in zip(pads, low_z, high_z):
        if abs(a - b) > S_AGREE_ABS_V + S_AGREE_REL * max(abs(a), abs(b)):
            _fail(bench, pad, f"{a:.4f} V at 10 Mohm but {b:.4f} V at > 10 Gohm")
    anchor = next((c for c, v in zip(channels, high_z) if abs(v) > S_PROBE_V), None)
    for pad, channel, a, b in zip(pads, channels, low_z, high_z):
        if anchor is None or channel == anchor or max(abs(a), abs(b)) >= S_LOW_V:
            continue
        reference, again = bench.read_volts([anchor, channel], FAST_NPLC)
        if abs(again - reference) <= FLOATING_REL * abs(reference):
            _fail(bench, pad, f"{again:.4f} V repeats the previous reading {reference:.4f} V (floating)")


def _fail(bench: PrintedBench, pad: str, reading: str) -> None:
    raise SafetyError(f"pad {pad} ({bench.plan.net_of(pad)}) does not answer: {reading} (6.2); "
                      "rails ramped down, every output off")


def measure_patterns(bench_file: Path, rows: np.ndarray, *, with_power: bool = False, power_rows: int | None = None,
                     progress: Progress | None = None, retarget: bool = False, pause=None,
                     **bench_options) -> NetworkReadings:
    """Apply each row to the printed network on ``bench_file``; read the class outputs (and the power).

    The power (8.2, 0.2 s a pattern instead of 0.06 s) is measured for every
    row with ``with_power``, or for the first ``power_rows`` rows; the power
    fields then hold those rows only. ``bench_options`` go to the bench (the
    session recorder's hooks). Bad input (bench file, job, rows, another
    process) is refused before any output is switched on; the bench powers
    everything down on any exit.
    """
    options = {**bench_options, **({"pause": pause} if pause is not None else {})}
    bench = PrintedBench.from_file(bench_file, **options)
    if bench.plan.job is None:
        raise ConfigError(f"{bench.config.where}: sample.kind is {bench.config.sample_kind!r}; patterns need a "
                          "printed network (kind = \"network\")")
    pads = network_pads(bench.plan.job)
    data = _checked_rows(rows, len(pads.inputs))
    n_power = len(data) if with_power else max(0, min(power_rows or 0, len(data)))
    report = progress or (lambda stage, done, total: None)
    with bench:
        start = bench.start()
        bench.require_drive_pads(start.drive_proof)
        with bench.powered(NETWORK_RAIL_GROUP):
            prove_sense_pads(bench, pads.proven)
            bench.set_pad(pads.bias, BIAS_V)
            columns = [_pattern(bench, pads, row, i < n_power, retarget, report, i, len(data))
                       for i, row in enumerate(data)]
    report("patterns", len(data), len(data))
    return _readings(columns, n_power > 0, start, bench.waited_s)


def _pattern(bench: PrintedBench, pads: NetworkPads, row: np.ndarray, with_power: bool, retarget: bool,
             report: Progress, index: int, total: int) -> tuple:
    """One pattern (8.2): inputs, 10 ms, outputs; then, with power, shunts and rails."""
    report("patterns", index, total)
    for pad, value in zip(pads.inputs, row):
        bench.set_pad(pad, float(value))
    driven = list(pads.inputs) + [pads.bias]
    shunts = [shunt_channel(pad_number(p, "D")) for p in driven]
    if retarget:
        drops = bench.read_volts(shunts, FAST_NPLC, settle=True)
        for pad, value, drop in zip(pads.inputs, row, drops):
            bench.set_pad(pad, float(value) + (drop - bench.offsets_v.get(pad_number(pad, "D"), 0.0)))
    outputs = bench.read_volts([sense_channel(pad_number(p, "S")) for p in pads.outputs], FAST_NPLC, settle=True)
    if not with_power:
        return (outputs,)
    volts = bench.read_volts(shunts, FAST_NPLC)
    rails = bench.rails()
    currents = [bench.shunt_current(p, v) for p, v in zip(driven, volts)]
    pad_v = [bench.pad_voltage(p, v) for p, v in zip(driven, volts)]
    power = sum(v * i for v, i in zip(pad_v, currents)) + rails.power_w
    return outputs, currents, pad_v, (rails.i_dd_a, rails.i_ss_a), power


def _readings(columns: list[tuple], with_power: bool, start: StartReport, waited_s: float) -> NetworkReadings:
    outputs = np.array([c[0] for c in columns], dtype=float)
    powered = [c for c in columns if len(c) > 1]
    if not with_power or not powered:
        return NetworkReadings(outputs, None, None, None, None, None, start, waited_s)
    currents = np.array([c[1] for c in powered], dtype=float)
    pad_v = np.array([c[2] for c in powered], dtype=float)
    return NetworkReadings(outputs, np.array([c[4] for c in powered]), currents[:, :-1], pad_v[:, :-1],
                           currents[:, -1], np.array([c[3] for c in powered]), start, waited_s)
