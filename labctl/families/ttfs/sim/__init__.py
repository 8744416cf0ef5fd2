"""Simulated RC-Spike dies (contract docs/specs/ttfs-bench.md): the die's own physics, not the training model."""
