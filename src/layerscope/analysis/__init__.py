"""Post-hoc analyses: receptive fields, patterns, probes, weight dynamics, similarity."""
