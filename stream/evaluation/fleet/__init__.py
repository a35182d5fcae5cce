"""Fleet benchmark (issue 16): a seeded labelled fleet generator and metrics that never point-adjust."""
