"""Metrics and gates: suite files, the metric protocol, and running a suite over an option's outputs."""
