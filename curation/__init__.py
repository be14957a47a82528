"""VST Curator: curate Visual Spatial Tuning training data (catalog, checks, review, exports)."""

__version__ = "0.1.0"
