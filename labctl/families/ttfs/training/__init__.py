"""Training a TTFS die's synapse and bias time codes on its measured model (seed 003)."""
