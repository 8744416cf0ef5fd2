"""Characterisation of an RC-Spike die (contract docs/specs/ttfs-bench.md 7): measure, fit, write the file.

One module per step's measurement (``dc_shape``, ``ladder``, ``reversal``,
``anchors``, ``sites``, ``leakage``; ``held`` the held-row reading they
share), one per fit (``shape_fit``, ``ladder_fit``, ``anchor_fit``,
``site_fit``, ``leak_fit``; ``branch`` the law of 1.6 they share),
``plan`` (the choices), ``tables`` (raw row layouts), ``analysis``
(readings -> parameters) and ``characterise`` (the run).
"""
