"""``labctl report`` for a printed process calibration: one self-contained HTML page and its figures as PNGs.

``contents`` reads the file (also a partial one) and derives every number shown,
``words`` writes numbers with their errors and why a structure was flagged,
``figures`` draws one matplotlib figure per topic, ``page`` writes the files.
Only ``figures`` and ``page`` pull in matplotlib; the GUI panels use
``contents`` and ``words``.
"""
