"""labctl: hardware-in-the-loop lab control for analog neural-network dies.

The pipeline (see docs/architecture.md) flows one way:
bench -> measurements -> fits -> model -> weights -> latches.
"""

__version__ = "0.1.0"
