"""Partitions of the data path: one per landing batch (a drop of extracts, whatever days it spans)."""

import dagster as dg

LANDING_BATCHES = dg.DynamicPartitionsDefinition(name="landing_batches")
