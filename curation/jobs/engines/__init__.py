"""Engines that run the per-shard check units: a local process pool, or Ray Data on a cluster."""
