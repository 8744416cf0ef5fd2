"""The TTFS family (RC-Spike time-to-first-spike chips, issue 15; contract docs/specs/ttfs-bench.md): in progress."""
