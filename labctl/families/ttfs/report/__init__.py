"""``labctl report`` for a TTFS (RC-Spike) characterisation: one self-contained HTML page and its figures as PNGs.

``contents`` reads the file (also a partial one) and derives every number
shown, ``evaluations`` reads the on-chip evaluation records beside it,
``words`` writes numbers with their errors, ``figures`` draws one matplotlib
figure per topic, ``page`` writes the files. The GUI panels
(:mod:`labctl.families.ttfs.gui`) show the same figures from the same readers.
"""
