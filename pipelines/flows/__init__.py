"""Prefect flows: scheduled and batch work (never the per-message work)."""
