"""A test-only device family: a resistor array read as output currents, behind labctl's family seam.

It proves the seam: registered through ``LABCTL_FAMILIES=toy_family:FAMILY``,
it runs ``labctl characterise -> train -> program -> evaluate`` through the
CLI with nothing of it outside this package. The device is a 5 x 3 array (four inputs and a bias row) of
programmable conductances (levels -3..3 times a unit conductance), each with
its own fixed gain (mismatch); an output column's current is
``sum_i V_i * gain_ij * level_ij * G_UNIT`` plus reading noise. Its "bench" is
a device file named by the bench file's bridge port (the family's link), as a
stand-in for hardware that keeps its programmed state between commands.
"""

from toy_family.family import FAMILY

__all__ = ["FAMILY"]
