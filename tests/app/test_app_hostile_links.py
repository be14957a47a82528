"""A link anyone can send: text in the query string (search words, filter values, a sample id) is shown on every page
as written, never as Markdown. Before, `?text=![x](URL)` made the viewer's browser fetch URL from the Browse, Sample,
Mixtures and Label Studio pages, and a backtick in an id broke out of the code span meant to hold it.

Every element that Streamlit renders as Markdown is parsed with a CommonMark parser (markdown-it-py, the parser of
Streamlit's own `rich` dependency): no image, no link, no raw HTML may come out of it, and the hostile text must be
on the page (shown, not dropped)."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from curation.labelstudio.server import pick_free_port
from tests.app.test_app_support import app_at, demo_app_home, forget_app_caches

EVIL = "evil.example"
IMAGE = f"![x](http://{EVIL}/pixel.png)"
LINK = f"[click me](http://{EVIL}/login)"
HTML = f"<img src='http://{EVIL}/raw.png'>"
BREAKOUT = f"x` {IMAGE} `y"  # a backtick that ends the code span a page wraps around an id or a filter
FENCES = f"`` ` {IMAGE} ` ``"  # runs of backticks: a code span must fence them with a longer run
# What Streamlit's Markdown elements render: their text is Markdown, so what a page puts there must be escaped.
MARKDOWN_ELEMENTS = ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success",
                     "toast")
UNSAFE_TOKENS = {"image", "link_open", "html_inline", "html_block"}
_MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])

CASES = {
    "browse text": ("pages/1_Browse.py", {"text": IMAGE}),
    "browse values": ("pages/1_Browse.py", {"skills": f"si_distance,{LINK}", "sources": HTML,
                                            "failed_checks": FENCES}),
    "browse bad value": ("pages/1_Browse.py", {"review": IMAGE}),  # the link's filter is refused, with its text
    "browse thresholds": ("pages/1_Browse.py", {"score_below": f"media.min_side:0.5,b{IMAGE}:0.2"}),
    "sample id": ("pages/2_Sample.py", {"id": BREAKOUT}),
    "sample queue": ("pages/2_Sample.py", {"id": "__first__", "text": IMAGE}),
    "mixtures": ("pages/4_Mixtures.py", {"text": BREAKOUT, "skills": LINK}),
    "label studio": ("pages/5_Label_Studio.py", {"text": IMAGE, "datasets": BREAKOUT}),
}


@pytest.fixture
def settings(monkeypatch, tmp_path, demo_home):
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{pick_free_port()}")  # nothing listens: page says so
    monkeypatch.setenv("LABEL_STUDIO_TOKEN", "0" * 40)
    yield demo_app_home(monkeypatch, tmp_path, demo_home)
    forget_app_caches()


def rendered_markdown(at) -> list[str]:
    """The Markdown source of every element that renders Markdown, expander labels included."""
    texts = [str(e.value) for kind in MARKDOWN_ELEMENTS for e in getattr(at, kind)]
    return texts + [str(e.label) for e in at.expander]


def shown_text(markdown: str) -> str:
    """What the viewer reads: the text and code of the rendered Markdown."""
    tokens = [t for block in _MD.parse(markdown) for t in [block, *(block.children or [])]]
    return "".join(t.content for t in tokens if t.type in ("text", "code_inline"))


def unsafe_parts(markdown: str) -> list[str]:
    """The images, links and raw HTML that ``markdown`` turns into (empty when it is plain text)."""
    found = []
    for token in _MD.parse(markdown):
        for t in [token, *(token.children or [])]:
            if t.type in UNSAFE_TOKENS:
                found.append(f"{t.type} {t.attrs or t.content!r}")
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_text_from_a_link_is_shown_as_text_never_as_markdown(settings, case):
    page, query = CASES[case]
    if query.get("id") == "__first__":  # a real sample, so the page shows its review queue under the filter
        from curation.query.catalog import CatalogQuery
        from curation.query.filters import FilterSpec

        q = CatalogQuery(settings)
        query = {**query, "id": q.page(FilterSpec(), limit=1).rows[0]["sample_id"]}
        q.close()
    at = app_at(page, **query)
    assert not at.exception, [e.value for e in at.exception]
    texts = rendered_markdown(at)
    shown = [t for t in texts if EVIL in shown_text(t) or EVIL in t]
    assert shown, f"the link's text is not on the page at all: {texts}"
    bad = {t: unsafe_parts(t) for t in shown if unsafe_parts(t)}
    assert not bad, f"rendered as Markdown: {bad}"


def test_the_escaping_shows_every_character_and_nothing_else():
    from app.components.text import code, plain

    hostile = [IMAGE, LINK, HTML, BREAKOUT, FENCES, "*a* _b_ **c** ~~d~~", "# h\n1. x\n- y",
               "$x^2$ :red[r] :material/home:", "a\\b\\", "|a|b|", "&amp; &#65;", "<http://x.y>", "``"]
    for text in hostile:
        for shown in (plain(text), code(text)):
            tokens = [t for block in _MD.parse(shown) for t in [block, *(block.children or [])]]
            assert {t.type for t in tokens} <= {"paragraph_open", "paragraph_close", "inline", "text", "softbreak",
                                                "code_inline"}, (text, shown)
            content = "".join("\n" if t.type == "softbreak" else t.content for t in tokens
                              if t.type in ("text", "code_inline", "softbreak"))
            assert content.replace("\n", " ") == text.replace("\n", " "), (text, shown, content)
