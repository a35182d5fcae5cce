"""`rnnwatch demo`: a local broker, a synthetic sensor fleet with injected anomalies, the service, live progress,
a plot and precision/recall against the injected truth."""
