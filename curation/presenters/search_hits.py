"""Where a full-text search matched a text: the query's words stemmed as the text index stems them, and the spans of
a text holding them (Browse's snippet and the Sample page's turns mark the same words)."""

from __future__ import annotations

import re
from functools import cache, lru_cache

import tantivy

_WORD = re.compile(r"[^\W_]+")  # tantivy's simple tokenizer: runs of letters and digits
_QUERY_SYNTAX = re.compile(r"\b(?:AND|OR)\b|\w+:")
_EXCLUDED = re.compile(r"(?:\bNOT\s+|(?<!\S)-)(?:\w+:)?(?:\"[^\"]*\"|\S+)")  # words the query rules out


@cache
def _analyzer() -> tantivy.TextAnalyzer:
    # The text index's "en_stem" tokenizer, so a word is marked exactly when the index matched it.
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase()).filter(tantivy.Filter.stemmer("english")).build())


@lru_cache(maxsize=65_536)
def _stems(word: str) -> frozenset[str]:
    return frozenset(_analyzer().analyze(word))


def search_terms(query: str) -> frozenset[str]:
    """The stemmed words of a search; query syntax (AND, OR, field:) and excluded words (NOT x, -x) left out."""
    words = _WORD.findall(_QUERY_SYNTAX.sub(" ", _EXCLUDED.sub(" ", query or "")))
    return frozenset(t for w in words for t in _stems(w))


def hit_spans(text: str, terms: frozenset[str]) -> list[tuple[int, int]]:
    """Character spans of the words of ``text`` that stem to one of ``terms`` ("chairs" for "chair", not "armchair")."""
    if not terms or not text:
        return []
    return [m.span() for m in _WORD.finditer(text) if _stems(m.group()) & terms]
