"""The TTFS report's figures, one per topic, as matplotlib Figures (no pyplot: ``labctl.report_page``).

The page renders them to PNG; the GUI panels put the same Figures on a Qt
canvas. Every axis names its quantity and unit; a panel whose data the file
lacks says so instead of staying blank, so "not measured" never looks like "fine".
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from labctl.families.ttfs.report.contents import (
    NEURON_QUANTITIES,
    POLARITIES,
    RAIL_NAMES,
    TtfsReport,
    ladder_model_a,
    polarity_of,
    row_model_a,
    rows_of,
)
from labctl.families.ttfs.report.evaluations import EvaluationRecord
from labctl.report_page import empty_note, figure, with_se

WIDTH_IN = 12.0
DPI = 100
"""Resolution of the PNGs (``labctl.report_page.to_png``)."""
NANO = 1e9
LAMBDA_NAMES = {1: "lambda_N", -1: "lambda_P"}
PAD_NAMES = {1: "EREV_EXC pad (V)", -1: "EREV_INH pad (V)"}
HISTOGRAM_COLUMNS = 5


def _figure(height_in: float, title: str) -> Figure:
    """A titled figure as wide as every other of this report."""
    return figure(WIDTH_IN, height_in, title)


def neurons(report: TtfsReport) -> Figure:
    """Every neuron's fitted C, V0, V_th, d, leakage and column gain with its standard error, layer by layer."""
    params = report.params
    assert params is not None
    fig = _figure(6.4, f"Neurons of {report.serial}: fitted parameters ± one standard error")
    axes = fig.subplots(2, 3, sharex=True)
    starts = np.cumsum([0, *params.layer_sizes[1:-1]])
    blocks = ", then ".join(f"layer {i + 1}: {s}-{s + n - 1}" for i, (s, n) in
                            enumerate(zip(starts, params.layer_sizes[1:])))
    for ax, q in zip(axes.flat, NEURON_QUANTITIES):
        values = []
        for index, (layer, start) in enumerate(zip(params.layers, starts)):
            m = getattr(layer, q.name)
            value, se = np.asarray(m.value) * q.scale, np.asarray(m.se) * q.scale
            ax.errorbar(start + np.arange(len(value)), value, yerr=se, fmt="o", ms=3, capsize=2, elinewidth=0.8,
                        color=f"C{index}", label=f"layer {index + 1}")
            values.append(value)
        median = float(np.median(np.concatenate(values)))
        ax.set_title(f"{q.label}: median {median:.4g} {q.unit}", fontsize=10)
        ax.set_ylabel(f"{q.label} ({q.unit})")
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel(f"neuron ({blocks})", fontsize=8)
    axes.flat[0].legend(fontsize=8)
    return fig


def ladder(report: TtfsReport) -> Figure:
    """The synapse ladders: each bit's weight against its nominal 2^k, each bias row's current per column
    against the fitted ladder, and what the fit leaves."""
    params = report.params
    fig = _figure(4.0, "Synapse ladders (step 7): bit weights and held bias rows")
    bits_ax, rows_ax, resid_ax = fig.subplots(1, 3)
    if params is None:
        empty_note(bits_ax, "not fitted (the run stopped before the analysis)")
        empty_note(resid_ax, "not fitted")
    else:
        k = np.arange(4)
        for offset, (p, name) in zip((-0.18, 0.18), POLARITIES):
            pol = polarity_of(params, p)
            deviation = (np.asarray(pol.bit_weights.value) / 2.0 ** k - 1) * 100
            bits_ax.bar(k + offset, deviation, 0.34, yerr=np.asarray(pol.bit_weights.se) / 2.0 ** k * 100,
                        capsize=3, color="C0" if p > 0 else "C3",
                        label=f"{name}: I_LSB {with_se(pol.i_lsb_a.value, pol.i_lsb_a.se, NANO)} nA")
        bits_ax.axhline(0, color="0.4", lw=0.8)
        bits_ax.set_xticks(k, [f"bit {b}\n(2^{b} = {2 ** b})" for b in k])
        bits_ax.set_ylabel("weight w_k / 2^k - 1 (%)")
        bits_ax.set_title("bit weights against nominal", fontsize=10)
        bits_ax.legend(fontsize=8)
    if report.ladder is None:
        empty_note(rows_ax, "not measured (the run stopped before step 7)")
        return fig
    for p, name in POLARITIES:
        for matrix in sorted(set(int(m) for m in report.ladder["matrix"])):
            rows = report.ladder[(report.ladder["polarity"] == p) & (report.ladder["matrix"] == matrix)]
            codes, columns = np.abs(rows["code"]).astype(int), report.layer_sizes[matrix + 1]
            current = np.abs(rows["synaptic_a"])
            colour = f"C{2 * (p < 0) + matrix}"
            label = f"{name}, matrix {matrix} ({columns} columns)"
            rows_ax.plot(codes, current / columns * NANO, "o", ms=3, color=colour, label=label)
            if params is not None:
                model = ladder_model_a(params, p, matrix, codes)
                order = np.argsort(codes)
                rows_ax.plot(codes[order], model[order] / columns * NANO, "-", lw=0.8, color=colour)
                resid_ax.plot(codes, (current / model - 1) * 100, "o-", ms=3, lw=0.6, color=colour, label=label)
    rows_ax.set_xlabel("code magnitude |c|")
    rows_ax.set_ylabel("held bias row current per column (nA)")
    rows_ax.set_title("measured (points) and fitted ladder (lines)", fontsize=10)
    rows_ax.legend(fontsize=7)
    rows_ax.grid(alpha=0.3)
    if params is not None:
        resid_ax.axhline(0, color="0.4", lw=0.8)
        resid_ax.set_xlabel("code magnitude |c|")
        resid_ax.set_ylabel("measured / fitted - 1 (%)")
        resid_ax.set_title("what the ladder fit leaves", fontsize=10)
        resid_ax.grid(alpha=0.3)
    return fig


def dc_shape(report: TtfsReport) -> Figure:
    """Step 2: every held row's current as its rail moves, with its fitted ``A (1 + lambda x) k(x)``; below,
    each row's lambda and the die mean (channel-length modulation)."""
    params = report.params
    fig = _figure(7.0, "DC shape (step 2): held rows against the rail, channel-length modulation lambda")
    axes = fig.subplots(2, 2)
    for col, (p, name) in enumerate(POLARITIES):
        top, bottom = axes[0, col], axes[1, col]
        if report.dc_shape is None:
            empty_note(top, "not measured (the run stopped before step 2)")
            empty_note(bottom, "not measured")
            continue
        fits = report.row_lambda.get(p)
        for i, rows in enumerate(rows_of(report.dc_shape, p)):
            matrix = int(rows["matrix"][0])
            sites = report.layer_sizes[matrix + 1]
            order = np.argsort(rows["rail_v"])
            colour = f"C{matrix}"
            label = f"matrix {matrix} rows" if int(rows["row"][0]) == 0 else None
            top.plot(rows["rail_v"][order], rows["synaptic_a"][order] / sites * NANO, "o", ms=2.5, color=colour,
                     label=label)
            if params is not None and fits is not None:
                rail = np.linspace(rows["rail_v"].min(), rows["rail_v"].max(), 60)
                top.plot(rail, row_model_a(params, p, fits[i], rail) / sites * NANO, "-", lw=0.6, color=colour)
        top.set_xlabel(PAD_NAMES[p])
        top.set_ylabel("held row current per site (nA)")
        top.set_title(f"{name}: measured (points), fitted per row (lines)", fontsize=10)
        top.legend(fontsize=8)
        top.grid(alpha=0.3)
        if params is None or fits is None:
            empty_note(bottom, "not fitted (the run stopped before the analysis)")
            continue
        lam = polarity_of(params, p)
        mean, se = float(lam.lam_per_v.value), float(lam.lam_per_v.se)
        index = np.arange(len(fits))
        bottom.errorbar(index, fits["lam_per_v"], yerr=fits["se"], fmt="o", ms=3, capsize=2, color="C0",
                        label="each held row")
        bottom.axhline(mean, color="k", lw=1, label="die mean")
        bottom.axhspan(mean - se, mean + se, color="0.8", alpha=0.6, label="± its standard error")
        bottom.set_xlabel("held row (matrix 0 rows, then matrix 1)")
        bottom.set_ylabel(f"{LAMBDA_NAMES[p]} (1/V)")
        bottom.set_title(f"{LAMBDA_NAMES[p]} = {with_se(mean, se)} /V, site spread {lam.lam_site_sd:.1%}",
                         fontsize=10)
        bottom.legend(fontsize=8)
        bottom.grid(alpha=0.3)
    return fig


def reversal(report: TtfsReport) -> Figure:
    """Step 3: membranes pulled onto each rail, and where the fit puts the reversal potentials E+ and E-."""
    fig = _figure(3.8, "Reversal potentials (step 3): membranes pulled onto each rail")
    for ax, (p, name), kind in zip(fig.subplots(1, 2), POLARITIES, ("e_exc", "e_inh")):
        traces = [t for t in report.reversal if t.kind == kind]
        if not traces:
            empty_note(ax, "not measured (the run stopped before step 3)")
            continue
        for tr in traces:
            ax.plot(tr.t_s * 1e6, tr.v, lw=0.8, label=f"layer {tr.layer} neuron {tr.neuron}")
        if report.params is not None:
            rail = polarity_of(report.params, p).reversal_v
            value, se = float(rail.value), float(rail.se)
            ax.axhline(value, color="k", ls="--", lw=1,
                       label=f"{RAIL_NAMES[p]} fitted {with_se(value, se, 1e3)} mV")
            ax.axhspan(value - se, value + se, color="0.7", alpha=0.5)
        ax.set_xlabel("time from SYNC (us)")
        ax.set_ylabel("membrane (V)")
        ax.set_title(f"{name} branch: towards {RAIL_NAMES[p]}", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return fig


def evaluation(record: EvaluationRecord) -> Figure:
    """One evaluated weight set: its confusion matrix, and the first-spike times that decided its patterns."""
    groups = len(record.spikes.times_ns)
    rows = -(-groups // HISTOGRAM_COLUMNS)
    accuracy = "-" if record.accuracy is None else f"{record.accuracy:.1%}"
    fig = _figure(1.2 + 2.4 * max(rows, 1.5), f"On-chip evaluation of weights {record.name}: accuracy {accuracy} of "
                                               f"{record.n_samples} test patterns")
    left, right = fig.subfigures(1, 2, width_ratios=(1, 2.2))
    confusion(left.add_subplot(), record)
    axes = right.subplots(rows, min(groups, HISTOGRAM_COLUMNS), squeeze=False, sharex=True)
    spike_histograms(list(axes.flat), record)
    if record.spikes.by == "true class":
        right.suptitle("first-spike time of the winning output, per true class", fontsize=10)
    else:
        right.suptitle("first-spike times of each output (the record has no per-pattern labels)", fontsize=10)
    return fig


def confusion(ax: Axes, record: EvaluationRecord) -> None:
    """The confusion matrix with its counts; the last column counts patterns where no output fired."""
    matrix = record.confusion
    k = record.n_classes
    ax.imshow(matrix, cmap="Blues", aspect="auto")
    if k <= 12:
        for (r, c), count in np.ndenumerate(matrix):
            ax.text(c, r, str(int(count)), ha="center", va="center", fontsize=8,
                    color="w" if count > 0.6 * matrix.max() else "k")
    ax.set_xticks(range(k + 1), [*map(str, range(k)), "none"])
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted class (first output to spike)")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix", fontsize=10)


def spike_histograms(axes: list[Axes], record: EvaluationRecord) -> None:
    """Per group (true class or output) a histogram of its first-spike times; right and wrong winners stacked."""
    spikes = record.spikes
    every = np.concatenate([*spikes.times_ns, np.zeros(0)])
    bins = np.histogram_bin_edges(every, bins=20) if len(every) else np.linspace(0, 1, 2)
    for i, ax in enumerate(axes):
        if i >= len(spikes.times_ns):
            ax.set_axis_off()
            continue
        times = spikes.times_ns[i]
        if spikes.correct is not None:
            right = spikes.correct[i]
            ax.hist([times[right], times[~right]], bins=bins, stacked=True, color=["C0", "C3"],
                    label=["right output", "wrong output"])
        else:
            ax.hist(times, bins=bins, color="C0")
        median = f", median {np.median(times):.0f} ns" if len(times) else ""
        ax.set_title(f"{spikes.by} {i}: {len(times)} spikes{median}", fontsize=8)
        ax.set_xlabel("first-spike time (ns)", fontsize=8)
        ax.set_ylabel("patterns", fontsize=8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    if spikes.correct is not None and axes:
        axes[0].legend(fontsize=7)
