"""The Browse table's domain part, without Streamlit: where a search matched, thumbnails read on demand (and never
from outside the media roots), and a sample's review state in a few words."""

from __future__ import annotations

import base64
import io

from PIL import Image

from curation.presenters.browse import search_snippet, thumbnail_url
from curation.presenters.search_hits import search_terms


def test_the_snippet_marks_the_words_the_index_matched_and_only_those():
    terms = search_terms('Chairs AND "the lamp" -bed question:sofa')
    assert {"chair", "lamp", "sofa"} <= terms and "bed" not in terms and "question" not in terms
    text = "<|image_pad|>Is the chair left of the bed? " + "filler words " * 20 + "A sofa."
    snippet = search_snippet(terms - {"the"}, [None, text])
    assert snippet.startswith("Is the «chair» left of the bed?")
    assert "«bed»" not in snippet and "image_pad" not in snippet and snippet.endswith("…")
    assert search_snippet(search_terms("armchair"), [text]) == ""  # a word, not a part of one
    assert search_snippet(frozenset(), [text]) == ""


def test_a_thumbnail_is_small_and_made_from_the_shards_own_files(tmp_path):
    Image.new("RGB", (2000, 1500), (200, 30, 30)).save(tmp_path / "big.jpg", quality=90)
    row = {"sample_id": "s1", "source_file": str(tmp_path / "shard.json"),
           "media": [{"kind": "image", "embedded": False, "path": "big.jpg"}]}
    url = thumbnail_url(row)
    assert url.startswith("data:image/jpeg;base64,")
    im = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert max(im.size) <= 96 and len(url) < 8_000


def test_no_thumbnail_for_media_outside_the_roots_a_video_or_bytes_that_are_no_image(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    base = {"sample_id": "s1", "source_file": str(tmp_path / "data" / "shard.json")}
    assert thumbnail_url({**base, "media": [{"kind": "image", "embedded": False, "path": "/etc/passwd"}]}) is None
    assert thumbnail_url({**base, "media": [{"kind": "image", "embedded": False, "path": "../notes.txt"}]}) is None
    assert thumbnail_url({**base, "media": [{"kind": "image", "embedded": False, "path": "../notes.txt"}]},
                         media_roots=[str(tmp_path)]) is None  # inside the roots, but not an image
    assert thumbnail_url({**base, "media": [{"kind": "video", "embedded": False, "path": "v.mp4"}]}) is None
    assert thumbnail_url({**base, "media": []}) is None
