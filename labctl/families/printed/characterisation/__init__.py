"""Characterising a PNC-1 print run on its test-structure sample (printed-bench.md 2.3 and 7).

One module per job: :mod:`.plan` (what is swept), :mod:`.sweeps` (the bench
operations), :mod:`.transfer_fit` (each structure's etas and power curve),
:mod:`.resistor_fit` (resistances, sheet resistances, line-width bias),
:mod:`.variation` (eps from the replicas), :mod:`.storage` (the HDF5 file),
:mod:`.analysis` (raw tables -> fits -> calibration) and :mod:`.characterise`
(the entry point, ``characterise_process``).
"""

from labctl.families.printed.characterisation.characterise import ProcessOutcome, characterise_process
from labctl.families.printed.characterisation.plan import SweepPlan

__all__ = ["ProcessOutcome", "SweepPlan", "characterise_process"]
