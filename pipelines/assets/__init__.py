"""Dagster asset families of mesops, one module per family."""
