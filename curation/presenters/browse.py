"""What the Browse table shows for one page of samples: text cut to fit, a thumbnail, flags, the review state, failed
checks with their severity, and where the search matched."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from curation.media.sample_media import MediaError, read_media_bytes
from curation.presenters.search_hits import hit_spans, search_terms
from curation.query.catalog import LIST_COLUMNS
from curation.query.results import sample_results
from curation.query.severity import SEVERITIES
from curation.review.flags import active_flags
from curation.review.reviews import CurrentReview, current_reviews
from curation.review.state_db import StateDB
from curation.vst.vocabulary import PLACEHOLDER_RE

# What a page reads from the catalog: the listed columns, the reasoning (searched too) and the media pointers.
PAGE_COLUMNS = [*LIST_COLUMNS, "reasoning", "media", "source_file", "row_group", "row_in_group"]
THUMBNAIL_PX = 96
_LEAD = 16  # characters of context before the first match
MARK_OPEN, MARK_CLOSE = "«", "»"  # a table cell is plain text: the matched words are set between these
_VERDICT_SHOWN = {"approve": "approved", "reject": "rejected", "fix": "fixed"}


@dataclass(frozen=True)
class BrowseRow:
    """One row of the Browse table, in the order the columns are shown."""

    sample_id: str
    thumbnail: str | None  # a data: URL of a small JPEG, or None (video, text only, media that cannot be read)
    skill: str
    question: str
    answer: str
    match: str  # where the search matched, the matched words marked; empty without a search
    flags: str  # the active flags' reasons
    review: str  # "approved by ann", "fixed by bob", or empty
    failed: str  # failed checks, most severe first: "error: media_decodable"
    severity: str  # the worst severity among them, or empty
    source: str
    dataset: str
    sample_group: str
    answer_kind: str
    n_images: int
    n_videos: int
    has_reasoning: bool


def browse_rows(rows: Sequence[Mapping], db: StateDB, results_dir: Path, text: str = "",
                thumbnail: Callable[[Mapping], str | None] | None = None, width: int = 140) -> list[BrowseRow]:
    """The table rows for a page of catalog rows (read with PAGE_COLUMNS): one query each for the page's flags,
    reviews and check results, whatever the page size. ``thumbnail``: row -> data URL (e.g. thumbnail_url with the
    settings' media roots, cached by the app); without it the column stays empty."""
    ids = [r["sample_id"] for r in rows]
    flags = active_flags(db, ids)
    reviews = current_reviews(db, ids)
    failures: dict[str, list[tuple[str, str]]] = {}
    for res in sample_results(results_dir, ids):
        if not res["passed"]:
            failures.setdefault(res["sample_id"], []).append((res["severity"] or "", res["check_name"]))
    terms = search_terms(text)
    out = []
    for r in rows:
        sid = r["sample_id"]
        failed = sorted(failures.get(sid, []), key=lambda f: (_rank(f[0]), f[1]))
        out.append(BrowseRow(
            sample_id=sid,
            thumbnail=thumbnail(r) if thumbnail else None,
            skill=r.get("skill") or "",
            question=_cut(_one_line(r.get("question")), width),
            answer=_cut(_one_line(r.get("answer")), width),
            match=search_snippet(terms, [r.get("question"), r.get("answer"), r.get("reasoning")]),
            flags=", ".join(dict.fromkeys(f.reason for f in flags.get(sid, []))),
            review=review_text(reviews.get(sid)),
            failed=" · ".join(f"{sev}: {name}" if sev else name for sev, name in failed),
            severity=failed[0][0] if failed else "",
            source=r.get("source") or "",
            dataset=r.get("dataset") or "",
            sample_group=r.get("sample_group") or "",
            answer_kind=r.get("answer_kind") or "",
            n_images=int(r.get("n_images") or 0),
            n_videos=int(r.get("n_videos") or 0),
            has_reasoning=bool(r.get("has_reasoning")),
        ))
    return out


def review_text(current: CurrentReview | None) -> str:
    """A sample's review state in a few words ("approved by ann"); empty when it has none."""
    if current is None:
        return ""
    verdict = _VERDICT_SHOWN.get(current.verdict, current.verdict)
    return f"{verdict} by {current.reviewer}" + (" (fixed)" if current.fixed and current.verdict != "fix" else "")


def thumbnail_url(row: Mapping, media_roots: Iterable[str] = (), px: int = THUMBNAIL_PX) -> str | None:
    """The row's first image as a small JPEG data URL (read through db's one media reader, nothing stored); None for
    a video or text sample and for media that cannot be read (the Sample page says why)."""
    media = row.get("media") or []
    if not media or media[0].get("kind") != "image":
        return None
    try:
        data = read_media_bytes(row, 0, media_roots)
        im = Image.open(io.BytesIO(data))
        im.draft("RGB", (px, px))  # JPEG decodes at a fraction of its size: most of the cost saved
        im.thumbnail((px, px))
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=75)
    except (MediaError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def search_snippet(terms: frozenset[str], texts: Sequence[str | None], width: int = 90) -> str:
    """The first text that holds a search term, cut to about ``width`` characters around the first match, every
    matched word set between « and »; empty when none matches."""
    if not terms:
        return ""
    for text in texts:
        text = _one_line(text)
        spans = hit_spans(text, terms)
        if not spans:
            continue
        start = max(0, spans[0][0] - _LEAD)  # the first match near the start: a narrow column still shows it
        end = min(len(text), start + width)
        parts, at = ["…" if start else ""], start
        for a, b in spans:
            if a < start or b > end:
                continue
            parts += [text[at:a], MARK_OPEN, text[a:b], MARK_CLOSE]
            at = b
        parts += [text[at:end], "…" if end < len(text) else ""]
        return "".join(parts)
    return ""


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _one_line(text: str | None) -> str:
    return " ".join(PLACEHOLDER_RE.sub("", str(text or "")).split())


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
