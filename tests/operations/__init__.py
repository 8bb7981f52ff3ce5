"""Operating the pipeline: the supervised `up`, the health flow, corrections and retraining."""
