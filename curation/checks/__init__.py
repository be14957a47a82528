"""Consistency checks over the catalog: a registry of small checks in families (format, media, geometry, ...)."""

from curation.checks.base import (
    BatchCheck,
    Check,
    CheckContext,
    GlobalCheck,
    Outcome,
    RowCheck,
    SqlCheck,
    rows_to_table,
)
from curation.checks.registry import all_checks, describe_checks, get_check, register, select_checks

__all__ = [
    "BatchCheck", "Check", "CheckContext", "GlobalCheck", "Outcome", "RowCheck", "SqlCheck", "rows_to_table",
    "all_checks", "describe_checks", "get_check", "register", "select_checks",
]
