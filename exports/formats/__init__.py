"""The training formats, one module per format, each declaring its FORMAT (exports/__init__.py registers them)."""
