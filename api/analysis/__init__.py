"""Analyses of the reasoning boundary, computed from stored samples and verdicts with SQL
that runs unchanged on PostgreSQL and SQLite: pass@k with confidence intervals, solvable sets
by role, accuracy histograms, the sampling-efficiency gap, temperature sweeps, perplexity of
samples under another model, and a lucky-guess audit."""
