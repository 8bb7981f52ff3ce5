"""Benchmarks and the synthetic streams they run on (each writes a JSON report via ``feedback-miner bench``)."""
