"""Training-format exports: the registry of formats (formats/, one module each) that the pipeline writes."""

from __future__ import annotations

from exports.base import ExportFormat
from exports.formats import llamafactory, llava, swift, verl, vst_rl, vst_sft

FORMATS: dict[str, ExportFormat] = {
    m.FORMAT.name: m.FORMAT for m in (vst_sft, vst_rl, llava, llamafactory, swift, verl)
}


def get_format(name: str) -> ExportFormat:
    """The format registered under ``name``; the error lists the known ones."""
    if name not in FORMATS:
        raise ValueError(f"unknown export format {name!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[name]
