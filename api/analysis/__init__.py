"""Computing reports: pass@k (in SQL, with its Python reference estimator), run reports,
solvable sets, accuracy histograms, the sampling-efficiency gap, temperature sweeps, perplexity
and the lucky-guess audit, from the stored samples and verdicts. Rendering is in render/."""
