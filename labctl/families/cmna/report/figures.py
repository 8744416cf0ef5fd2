"""The report's figures, one per topic, rendered to PNG by matplotlib's Agg canvas
(``labctl.report_page``).

Figures are built on ``matplotlib.figure.Figure`` with an explicit Agg
canvas, never through pyplot: no global backend is chosen, so a report can be
written from inside the Qt GUI or a test without disturbing either, and on a
machine without a display.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import imread, imsave
from matplotlib.ticker import FuncFormatter

from labctl.families.cmna.characterisation.analysis import DISAGREEMENT_SIGMAS, POOR_FIT_RELATIVE_STD
from labctl.families.cmna.characterisation.chains import PLAUSIBLE_RATIO
from labctl.families.cmna.report.contents import (
    ReportData,
    a_plus_rel_std,
    config_kinds,
    method_z,
    ratio_rel_std,
    reference_drift,
    time_origin,
)
from labctl.report_page import empty_note, figure

WIDTH_IN = 11.0
DPI = 90
"""Resolution of the PNGs (``labctl.report_page.to_png``)."""
NANO = 1e9
TIME_LABEL = "bench time since the first reading (s)"


def stack_pngs(pngs: list[bytes]) -> bytes:
    """One tall PNG of the figures, top to bottom (the report's overview image)."""
    images = [imread(io.BytesIO(p)) for p in pngs]
    width = max(im.shape[1] for im in images)
    padded = [np.pad(im, ((0, 0), (0, width - im.shape[1]), (0, 0)), constant_values=1.0) for im in images]
    buf = io.BytesIO()
    imsave(buf, np.concatenate(padded, axis=0), format="png")
    return buf.getvalue()


def _figure(height_in: float, title: str) -> Figure:
    """A titled figure as wide as every other of this report."""
    return figure(WIDTH_IN, height_in, title)


def _measured(data: ReportData, layer: int) -> np.ndarray:
    """Neurons that a measurement reached (/calibration fills the others with typical values)."""
    unmeasured = data.flags[layer].unmeasured
    n = data.chip.layer_sizes[layer]
    return np.ones(n, bool) if unmeasured is None else ~unmeasured


def _hist(ax: Axes, values: np.ndarray, title: str, xlabel: str,
          limits: tuple[float, float] = (-np.inf, np.inf)) -> None:
    """Histogram of the finite values within ``limits``; the title counts those left out (failed fits)."""
    values = values[np.isfinite(values)]
    shown = values[(values >= limits[0]) & (values <= limits[1])]
    if not len(shown):
        empty_note(ax, "not measured")
        ax.set_title(title, fontsize=10)
        return
    ax.hist(shown, bins=int(np.clip(len(shown) // 4, 5, 30)), color="tab:blue", edgecolor="white")
    spread = np.std(shown) / np.mean(shown) if len(shown) > 1 else np.nan
    outside = f", {len(values) - len(shown)} outside {limits[0]:g}-{limits[1]:g}" if len(shown) < len(values) else ""
    ax.set_title(f"{title}\nn={len(shown)}, spread {spread:.1%}{outside}", fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("neurons")


def gains(data: ReportData) -> Figure:
    """Per layer: a+ and a-/a+ histograms of the neurons a measurement reached."""
    assert data.fits is not None
    n = data.chip.n_layers
    fig = _figure(5.5, "Gains per layer (normalised: mean a+ = 1 in each layer)")
    axes = fig.subplots(2, n, squeeze=False)
    for l, lay in enumerate(data.fits.layers):
        keep = _measured(data, l)
        _hist(axes[0, l], lay.a_plus[keep], f"layer {l}: a+", "a+ (1 = layer mean)")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = lay.a_minus / lay.a_plus
        if l == n - 1:
            empty_note(axes[1, l], "output layer:\nno a-/a+")
            axes[1, l].set_title(f"layer {l}: a-/a+", fontsize=10)
        else:
            _hist(axes[1, l], ratio[keep], f"layer {l}: a-/a+", "a-/a+ (ratio)", PLAUSIBLE_RATIO)
    return fig


def residuals(data: ReportData) -> Figure:
    """Left: the two methods against each other per neuron; right: fit standard errors per layer."""
    assert data.fits is not None
    fig = _figure(4.5, "Fit residuals and standard errors")
    left, right = fig.subplots(1, 2)
    offset = 0
    for l in range(data.chip.n_layers):
        z = method_z(data, l)
        if z is not None and np.isfinite(z).any():
            left.plot(np.arange(len(z)) + offset, z, "o", ms=4, label=f"layer {l}")
        offset += data.chip.layer_sizes[l]
    if left.lines:
        for sign in (-1, 1):
            left.axhline(sign * DISAGREEMENT_SIGMAS, color="tab:red", ls="--", lw=1)
        left.axhline(0, color="0.5", lw=0.8)
        left.set_xlabel("neuron (layers one after another)")
        left.set_ylabel("(a+ MON - a+ network) / sigma")
        left.legend(fontsize=8)
    else:
        empty_note(left, "needs both methods: no neuron of this file\nwas fitted by both")
    left.set_title(f"direct (MON) vs network (C2F) method; dashed: {DISAGREEMENT_SIGMAS:g} sigma", fontsize=10)

    labels, rng = [], np.random.default_rng(0)
    for l, lay in enumerate(data.fits.layers):
        keep = _measured(data, l)
        for name, rel in (("a+", a_plus_rel_std(lay)), ("a-/a+", ratio_rel_std(lay))):
            rel = rel[keep & np.isfinite(rel)] * 100
            if len(rel):
                x = len(labels)
                right.plot(x + rng.uniform(-0.15, 0.15, len(rel)), rel, "o", ms=3, alpha=0.7, color=f"C{l}")
                right.plot([x - 0.3, x + 0.3], [np.sqrt(np.mean(rel ** 2))] * 2, color="k", lw=2)
                labels.append(f"L{l} {name}")
    right.axhline(POOR_FIT_RELATIVE_STD * 100, color="tab:red", ls="--", lw=1)
    right.set_yscale("log")
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    right.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    right.set_xticks(range(len(labels)), labels, fontsize=8)
    right.set_ylabel("relative standard error (%)")
    right.set_title("per neuron; bar: rms; dashed: poor-fit limit", fontsize=10)
    return fig


def linear_range(data: ReportData) -> Figure:
    """Per layer: compression onset per soma against the largest input applied to it."""
    n = data.chip.n_layers
    fig = _figure(3.8, "Linear range: compression onset per soma vs largest input applied")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for l, ax in enumerate(axes):
        onset, applied = data.onset[l], data.max_input_a[l]
        idx = np.arange(data.chip.layer_sizes[l])
        if onset is not None and np.isfinite(onset.value).any():
            ax.errorbar(idx, onset.value * NANO, yerr=np.nan_to_num(onset.std) * NANO, fmt="o", ms=4,
                        capsize=2, label="compression onset")
        if applied is not None:
            ax.plot(idx, applied * NANO, "v", color="tab:orange", ms=5, label="largest input applied")
        if not ax.lines and not ax.collections:
            empty_note(ax, "not measured")
        else:
            ax.set_ylim(bottom=0)
            ax.set_xlabel("soma")
            ax.set_ylabel("soma input (nA)")
            ax.legend(fontsize=8)
        ax.set_title(f"layer {l}" + ("" if onset is not None else ": onset not measured"), fontsize=10)
    return fig


def drift(data: ReportData) -> Figure:
    """Reference runs' gain and the die temperature over bench time."""
    trace, summary = reference_drift(data)
    times, temps = trace.times, trace.temps
    t0 = time_origin(data.raw)
    fig = _figure(5.0, "Drift: reference readings and die temperature over bench time")
    top, bottom = fig.subplots(2, 1, sharex=True)
    if len(times):
        top.errorbar(times - t0, (trace.factor - 1) * 100, yerr=trace.factor_std * 100, fmt="o-", capsize=2,
                     color="tab:blue")
        rate = summary.get("rate_per_min")
        top.set_title("reference gain against the first reference run" + (
            f"; {rate * 100:+.3f} ± {summary['rate_std_per_min'] * 100:.3f} %/min"
            + (" (FLAGGED)" if summary["flagged"] else "") if rate is not None else ""), fontsize=10)
        top.set_ylabel("gain change (%)")
        top.axhline(0, color="0.5", lw=0.8)
    else:
        empty_note(top, "no reference runs recorded")
    c2f = data.raw.c2f if data.raw is not None else np.zeros(0)
    if len(c2f):
        bottom.plot(c2f["time_s"] - t0, c2f["temperature_c"], ".", ms=3, color="tab:red", label="every C2F gate")
        if len(times):
            bottom.plot(times - t0, temps, "s", color="k", ms=5, label="reference runs")
        bottom.legend(fontsize=8)
    else:
        empty_note(bottom, "no C2F gates recorded (no temperature)")
    bottom.set_ylabel("die temperature (°C)")
    bottom.set_xlabel(TIME_LABEL)
    return fig


def raw_readings(data: ReportData) -> Figure:
    """What was measured when: MON readings and C2F rates over bench time, by configuration kind."""
    raw = data.raw
    assert raw is not None
    fig = _figure(4.0, "Raw readings over bench time, by configuration kind")
    left, right = fig.subplots(1, 2)
    kind_of = config_kinds(raw)
    t0 = time_origin(raw)
    mon, c2f = raw.mon, raw.c2f
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = c2f["counts"].mean(axis=1) / c2f["gate_s"] if len(c2f) else np.zeros(0)
    for ax, rows, y, ylabel in ((left, mon, mon["current_a"] * NANO, "MON current (nA)"),
                                (right, c2f, rate / 1e3, "C2F rate, mean of outputs (kHz)")):
        if not len(rows):
            empty_note(ax, "none recorded")
            continue
        kinds = np.array([kind_of.get(int(c), "?") for c in rows["config"]])
        for k, kind in enumerate(sorted(set(kinds))):
            sel = kinds == kind
            ax.plot(rows["time_s"][sel] - t0, y[sel], ".", ms=2, color=f"C{k}", label=kind, rasterized=True)
        ax.set_xlabel(TIME_LABEL)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, markerscale=4)
    left.set_title(f"{len(mon)} MON readings", fontsize=10)
    right.set_title(f"{len(c2f)} C2F gates", fontsize=10)
    return fig


def power(data: ReportData) -> Figure:
    """Per test pattern, the measured supply power and, where the calibration has a supply model, its prediction."""
    records = [p for p in data.power if p.supply_w is not None]
    fig = _figure(3.2, "Supply power per test pattern")
    ax = fig.add_subplot()
    for record in records:
        index = np.arange(len(record.supply_w))
        line = ax.plot(index, record.supply_w * 1e6, "o", ms=4, label=f"{record.weights}: measured")[0]
        if record.predicted_supply_w is not None:
            ax.plot(index, record.predicted_supply_w * 1e6, "x", color=line.get_color(),
                    label=f"{record.weights}: supply model")
    ax.set_xlabel("test pattern")
    ax.set_ylabel("supply power (uW)")
    ax.legend(fontsize=8)
    return fig
