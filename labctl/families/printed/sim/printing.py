"""What a print run and a sample make of a drawn component (contract 1.2, 1.6).

A drawn resistor becomes ``R_s(run) L / (W + dW(run))`` times the sample's
own factor ``1 + U(-eps, eps)``; an EGT's W and L each get their own factor.
The kit resistors inside the cells (:mod:`.cells`) are printed in RH like any
other, so they follow the run's sheet resistance and the sample's variation
too. Factors are drawn in the order components are printed, from the
sample's generator, so one seed gives one sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.printed.sim.cells import ACT_KIT_R_OHM, NEG_KIT_LOAD_R_OHM, NEG_KIT_PULLDOWN_R_OHM, ActComponents, \
    NegComponents
from labctl.families.printed.sim.process import RH_NOMINAL_OHM_SQ, ProcessRun
from labctl.families.printed.sim.variation import factors


@dataclass
class Printer:
    """Prints components of one sample in one run; ``printed`` records every value (the truth file's)."""

    run: ProcessRun
    eps: float
    rng: np.random.Generator

    def __post_init__(self) -> None:
        self.printed: dict[str, float] = {}

    def _factor(self) -> float:
        return float(factors(1, self.eps, self.rng)[0])

    def resistor(self, name: str, layer: str, w_um: float, l_um: float) -> float:
        """A drawn W x L rectangle of ``layer`` as printed (ohm)."""
        value = self.run.resistance_ohm(layer, w_um, l_um) * self._factor()
        self.printed[name] = value
        return value

    def kit_resistor(self, name: str, nominal_ohm: float) -> float:
        """A kit resistor (RH) given by its nominal value: scaled by the run's R_s and the sample's factor."""
        value = nominal_ohm * self.run.rh_ohm_sq / RH_NOMINAL_OHM_SQ * self._factor()
        self.printed[name] = value
        return value

    def egt(self, name: str, w_um: float, l_um: float) -> tuple[float, float]:
        w, length = w_um * self._factor(), l_um * self._factor()
        self.printed[f"{name}.W_um"], self.printed[f"{name}.L_um"] = w, length
        return w, length

    def act(self, name: str, resistors: dict[str, tuple[str, float, float]],
            egts: dict[str, tuple[float, float]]) -> ActComponents:
        """An ACT from drawn R1, R2 (layer, W, L) and T1, T2 (W, L) (contract 1.4)."""
        r1 = self.resistor(f"{name}.R1", *resistors["R1"])
        r2 = self.resistor(f"{name}.R2", *resistors["R2"])
        w1, l1 = self.egt(f"{name}.T1", *egts["T1"])
        w2, l2 = self.egt(f"{name}.T2", *egts["T2"])
        return ActComponents(r1, r2, w1, l1, w2, l2, rk_ohm=self.kit_resistor(f"{name}.RK", ACT_KIT_R_OHM))

    def neg(self, name: str, resistors: dict[str, tuple[str, float, float]],
            egts: dict[str, tuple[float, float]]) -> NegComponents:
        """A NEG from drawn R1..R5 and T (contract 1.5)."""
        r = [self.resistor(f"{name}.R{k}", *resistors[f"R{k}"]) for k in range(1, 6)]
        w, length = self.egt(f"{name}.T", *egts["T"])
        return NegComponents(*r, w, length, rl_ohm=self.kit_resistor(f"{name}.RL", NEG_KIT_LOAD_R_OHM),
                             rk_ohm=self.kit_resistor(f"{name}.RK", NEG_KIT_PULLDOWN_R_OHM))
