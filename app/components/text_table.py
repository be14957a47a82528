"""A small table whose cells are shown as written: st.table renders Markdown in its cells, and these cells hold other
people's text (names, notes, fixed answers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from app.components.text import plain


def text_table(rows: Sequence[Mapping[str, object]]) -> None:
    """``rows`` as an HTML table (text the browser can read and find), every text cell escaped."""
    st.table([{k: plain(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows], hide_index=True)
