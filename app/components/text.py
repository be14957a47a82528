"""Text from links, shards and other people, put into Streamlit's Markdown so that it shows as written, never as
Markdown: `?text=![x](URL)` must not make the viewer's browser fetch URL.

Everything a page did not write itself goes through one of these two before it reaches st.markdown, st.caption,
st.title, st.info/warning/error/success, an expander's label or any other element that renders Markdown.
"""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation character; escaping all of them leaves nothing that could
# open an image, a link, HTML, emphasis, a heading, LaTeX ($) or one of Streamlit's :colour[...] / :material/...:
# directives. (Bare URLs are still shown as clickable URLs: exactly the text, nothing hidden behind it.)
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_BACKTICKS = re.compile(r"`+")
_LINE_BREAKS = re.compile(r"[\r\n]+")


def plain(value: object) -> str:
    """``value`` as Markdown that displays exactly its text."""
    return _PUNCTUATION.sub(r"\\\1", str(value))


def code(value: object) -> str:
    """``value`` as a Markdown code span (monospace, nothing inside is Markdown; a newline shows as a space), however
    many backticks it holds: the fence is one backtick longer than its longest run (CommonMark 6.1)."""
    text = _LINE_BREAKS.sub(" ", str(value))  # a line break inside a code span would let the next line be a block
    if not text:
        return ""
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    # One space inside each fence is stripped when both are there: it lets the text start or end with a backtick.
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"
