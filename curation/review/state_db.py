"""The curation-state database for callers that import only curation (the app): db.engine's StateDB and open_state."""

from __future__ import annotations

from db.engine import StateDB, open_state

__all__ = ["StateDB", "open_state"]
