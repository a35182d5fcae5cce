"""Offline evaluation of detectors on the Numenta Anomaly Benchmark (corpus loading, NAB scoring, baselines)."""
