"""Training-format writers: one module per format, the manifest, media storage and the streaming pipeline.

Pure functions of (selected rows, media access) -> files; the selection itself lives in curation.mixtures.selection.
"""

from __future__ import annotations

from exports import llamafactory, llava, swift, verl, vst_rl, vst_sft
from exports.base import ExportFormat

FORMATS: dict[str, ExportFormat] = {
    m.FORMAT.name: m.FORMAT for m in (vst_sft, vst_rl, llava, llamafactory, swift, verl)
}


def get_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown export format {name!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[name]
