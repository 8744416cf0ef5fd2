"""What the TTFS characterisation sets and how often it repeats: the reference plan of contract 7, as data.

One frozen record so that a run's choices are written into its file
(provenance) and a test can shorten a plan without touching the steps.
Where this plan departs from contract 7, the field says so. The defaults are
RCS-S's plan; :meth:`CharacterisationPlan.for_part` gives a part's plan
(RCS-L changes the fields in :data:`PART_PLANS`, each saying why).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class CharacterisationPlan:
    """Levels, codes and repeats of each step (contract 7)."""

    exc_levels_v: tuple[float, ...] = (0.00, 0.15, 0.30, 0.40, 0.55, 0.70)
    """Step 2: EREV_EXC levels of the DC shape (every row written +15, held one at a time)."""
    inh_levels_v: tuple[float, ...] = (1.40, 1.50, 1.60, 1.70, 1.80)
    """Step 2: EREV_INH levels (every row written -15)."""
    ladder_codes: tuple[int, ...] = tuple(range(1, 16))
    """Ladder (step 7, on DC): each matrix's bias row written +-code on every column and held. Contract 7
    measures every code on every site through timing; the held row's DC current sums the row's columns,
    which averages the write residual over the columns at a fraction of the writes."""
    anchor_codes: tuple[int, ...] = (6, 10, 15)
    """Step 4: the code at one column per neuron (of every row, or of the bias row alone: ``anchor_rows``)."""
    anchor_rows: Literal["all", "bias"] = "all"
    """Step 4's drive: ``all`` writes every row of the matrix at the neuron's column and holds each in turn
    (the line's intercept, d, close to a measured point; :mod:`.anchors`); ``bias`` is contract 7's bias row
    alone (one held reading per code), and the column gains then come from step 5 (contract 7)."""
    shape_rows: int | None = None
    """Step 2: rows held per matrix, evenly spread, the bias row included; None holds every row. Contract 7
    holds only the bias rows; rows of few sites (RCS-S's, RCS-L's matrix 2) show lambda's site spread,
    which one bias row per matrix cannot."""
    window_ns: int | None = None
    """Output window of steps 4 and 5 (SET_TIMING); None keeps the bridge's (16 us, 1.2)."""
    anchor_repeats: int = 16
    """Step 4: bias-only patterns per code (TDC)."""
    trace_code: int = 6
    """Step 4: the code of the anchor trace. Contract 7 takes +15; the slowest ramp makes V_th least
    sensitive to the trace's time base (+-15 ns, 3.2)."""
    trace_averages: int = 16
    site_code: int = 10
    """Step 5: every row written +10, each row alone at t = 0."""
    site_repeats: int = 8
    reversal_neurons: int = 2
    """Step 3: neurons per layer with a trace near each reversal potential (contract 7: 4)."""
    reversal_vth_v: float = 0.40
    reversal_exc_v: float = 0.60
    reversal_inh_v: float = 1.50
    reversal_window_ns: int = 8000
    """Contract 7 takes 32 us; 8 us holds the approach and the plateau at four times the time resolution
    of the knee (2000 points)."""
    reversal_screen_v: tuple[float, float] = (0.15, 1.05)
    """Scope volts per division and centre of the step-3 traces: 0.45 to 1.65 V holds both rails' approach and
    the chain's calibration levels (3.4); the default screen (0.70 to 1.50 V) clips at either rail."""
    leak_window_ns: int = 65000
    leak_averages: int = 64
    kappa_neurons: int = 2
    """Step 8: neurons per layer with the coupling trace (inputs at code 200)."""
    kappa_code: int = 200
    input_delay_ns: float = 1.0
    """d_in (1.3, T): a code-driven row switches on 10 ns x code + d_in after t = 0; not separable from d_i."""
    input_delay_se_ns: float = 0.3
    """The uncertainty of d_in (1.3: +-0.5 ns between lines, G) carried into every d_i."""
    probe_delay_s: float = 12e-9
    """The probe buffer's group delay (1.10, T), taken off every trace's time axis (3.2)."""
    trace_time_se_s: float = 8e-9
    """Time-base uncertainty of a membrane trace (3.2: +-15 ns, T, taken as a rectangle's rms)."""
    nplc: float = 1.0
    """Power-line cycles of a DC reading (steps 2 and 7)."""
    anchor_nplc: float = 10.0
    """Step 4's held readings: every level's current enters C and d directly (contract 7 allows NPLC 10)."""

    def __post_init__(self) -> None:
        if self.anchor_rows == "bias" and self.trace_code not in self.anchor_codes:
            raise ValueError(f"bias-row anchors trace one of their levels: trace code {self.trace_code} is not "
                             f"among the anchor codes {self.anchor_codes}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_part(cls, part: str) -> CharacterisationPlan:
        """The plan of ``part`` (IDENTIFY's part name): the defaults with that part's changes."""
        return replace(cls(), **PART_PLANS.get(part, {}))


PART_PLANS: dict[str, dict] = {
    "RCS-L": {
        # holding every row of a column at three codes is 785 x 3 readings at NPLC 10 per layer-1 neuron
        # (about 500 s each, 54 h in all): contract 7's bias-row anchors, 6 readings per neuron instead
        "anchor_rows": "bias",
        # every row at 11 rail levels is 1171 x 11 readings (about 300 s); 16 rows per matrix keep the site
        # spread (matrix 2's rows of 10 sites) at 48 x 11 readings
        "shape_rows": 16,
        # one code-6 site fires a layer-1 neuron (421 fF) after about 18 us, up to 24 us on a slow die (1.7's
        # bounds), past the default 16 us window; contract 7's step 3 takes 32 us too
        "window_ns": 32000,
        # one +15 bias site takes about 10 us to pull a 421 fF membrane onto E+: 24 us holds the approach and
        # a settled third of the trace, at 12 ns a point against the knee's 0.15 to 0.4 us (layer 3 to 1)
        "reversal_window_ns": 24000,
    },
}
"""Each part's departures from the defaults (RCS-S's plan), with why."""
