"""What the curation state refuses: StateError, naming the sample or row and the field, and the empty-field check."""

from __future__ import annotations


class StateError(ValueError):
    """A request the curation state refuses; the message names the sample or row and the field."""


def require_text(value: str | None, what: str, where: str) -> str:
    """``value`` when it has non-blank text, else a StateError naming the field ``what`` of ``where``."""
    if not value or not str(value).strip():
        raise StateError(f"{where}: field '{what}' is empty; give a non-empty {what}")
    return value
