"""Benchmarks: step time, cost per update, passes per step, wall time to the best checkpoint."""
