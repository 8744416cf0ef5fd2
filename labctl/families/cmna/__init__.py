"""The CMNA family: current-mode analog neural dies (seed 004), contract ../shared/specs/cmna-bench.md.

The seam object is :data:`labctl.families.cmna.family.FAMILY` (entry point
``labctl.families: cmna``). Sub-packages: ``characterisation`` (runs and
analysis), ``training`` (the die model and the trainer), ``report``, ``sim``
(the simulated bench: imported only by the commands that start one).
"""
