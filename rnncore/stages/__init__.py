"""Scoring stages around the recurrent forecaster: seasonality, novelty, the pipeline."""
