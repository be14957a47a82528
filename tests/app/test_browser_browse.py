"""Browse in a real browser (Debian's Chromium via Playwright against `streamlit run` on the demo home).

A curator opens a shared link, changes one filter after another and keeps her selection; she selects rows of the
table, flags them in one go and takes the whole batch back with one undo.
"""

from __future__ import annotations

import pytest

from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.actors import local_actor
from curation.review.flags import flags_for
from db.engine import open_state
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, WAIT_MS, app_server, button, shot, wait_idle

pytestmark = pytest.mark.browser
__all__ = ["app_server"]  # the fixture, imported for pytest

SKILL = "si_3d_detection"
ROW_HEIGHT = 44  # app/pages/1_Browse.py (a page module runs when imported)


def choose(page, key: str, option: str) -> None:
    """Pick ``option`` in the selectbox with Streamlit key ``key`` and wait for the rerun to finish."""
    page.locator(f".st-key-{key} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def match_count(page) -> int:
    text = page.get_by_text("samples match").first.inner_text()
    return int(text.split("samples match")[0].strip().replace(",", ""))


def test_a_second_filter_change_keeps_the_selected_skill_a_value_not_its_label(app_server):
    from playwright.sync_api import expect, sync_playwright

    url, settings = app_server
    q = CatalogQuery(settings)
    try:
        expected = {hr: q.count(FilterSpec(skills=[SKILL], text="chair", has_reasoning=hr)) for hr in (None, True)}
    finally:
        q.close()
    assert expected[None] > 0 and expected[True] == 0  # the skill's facet count moves when reasoning is required
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(f"{url}/Browse?skills={SKILL}&text=chair")
            expect(page.get_by_text("samples match")).to_be_visible(timeout=WAIT_MS)
            wait_idle(page)
            assert match_count(page) == expected[None]

            choose(page, "flt_has_reasoning", "yes")  # the skill's count in its label moves to 0
            expect(page.get_by_text("No sample matches this filter")).to_be_visible(timeout=WAIT_MS)
            choose(page, "flt_has_reasoning", "any")  # the second change: the skill must still be the skill
            expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible(timeout=WAIT_MS)
            shot(page, "browse-filter-second-change")
            assert match_count(page) == expected[None]
            assert f"skills={SKILL}&" in page.url + "&" and "%28" not in page.url  # no "(15)" in the link
            chips = page.locator(".st-key-flt_skills [data-tag]").evaluate_all("ts => ts.map(t => t.ariaLabel)")
            assert chips == [f"{SKILL} ({expected[None]})"]  # the value, with its count as it is now
        finally:
            browser.close()


def tick_rows(page, expect, n: int) -> None:
    """Tick the first ``n`` rows of the table (the grid is a canvas: its selection column, by position), each tick
    seen by the app before the next."""
    grid = page.locator('[data-testid="stDataFrame"]').bounding_box()
    for i in range(n):
        page.mouse.click(grid["x"] + 15, grid["y"] + 35 + ROW_HEIGHT * i + ROW_HEIGHT / 2)
        expect(page.get_by_text(f"{i + 1} on this page")).to_be_visible(timeout=WAIT_MS)
        wait_idle(page)


def test_tick_rows_flag_them_as_one_batch_then_undo_the_batch_and_click_a_row_to_open_it(app_server):
    from playwright.sync_api import expect, sync_playwright

    url, settings = app_server
    who = local_actor().who  # single-user: the machine's user acts (as admin), no name to type
    spec = FilterSpec(skills=["si_distance"])
    q = CatalogQuery(settings)
    try:
        ids = [r["sample_id"] for r in q.page(spec, limit=3).rows]
    finally:
        q.close()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(f"{url}/Browse?skills=si_distance")
            expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible(timeout=WAIT_MS)
            wait_idle(page)

            tick_rows(page, expect, 2)
            page.get_by_label("Note (optional)").fill("distance off by a metre")
            page.get_by_label("Note (optional)").press("Enter")
            wait_idle(page)
            expect(button(page, "bulk_apply")).to_have_text("Flag 2 samples as wrong_answer…", timeout=WAIT_MS)
            button(page, "bulk_apply").click()
            expect(page.get_by_text("Flag 2 samples as wrong_answer? It is one batch")).to_be_visible(timeout=WAIT_MS)
            button(page, "bulk_confirm").click()
            expect(page.get_by_text(f"Flagged 2 samples as one batch by {who}")).to_be_visible(timeout=WAIT_MS)
            shot(page, "browse-bulk-flagged")
            with open_state(settings.db_url) as db:
                assert [[(f.reason, f.who, f.note) for f in flags_for(db, sid)] for sid in ids] == [
                    [("wrong_answer", who, "distance off by a metre")]] * 2 + [[]]

            button(page, "bulk_undo").click()
            expect(page.get_by_text("Undone: 2 changes of the batch taken back.")).to_be_visible(timeout=WAIT_MS)
            with open_state(settings.db_url) as db:
                assert [flags_for(db, sid) for sid in ids] == [[], [], []]

            # A click on a row's text (not its box) opens that sample, the filter kept.
            wait_idle(page)
            grid = page.locator('[data-testid="stDataFrame"]').bounding_box()
            page.mouse.click(grid["x"] + 200, grid["y"] + 35 + ROW_HEIGHT * 2 + ROW_HEIGHT / 2)
            page.wait_for_url(f"**/Sample?*id={ids[2]}*", timeout=WAIT_MS)
            assert "skills=si_distance" in page.url
        finally:
            browser.close()
