"""The Sample page in a real browser (Debian's Chromium via Playwright, `streamlit run` on the demo home): boxes on
the image the question places them in, a box picked in the table standing out, and the review message after
approve-and-next naming the sample it was about. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re

import pytest

from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.reviews import review_for
from db.engine import open_state
from tests.app.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    WAIT_MS,
    app_server,
    button,
    shot,
    wait_idle,
)

pytestmark = pytest.mark.browser
__all__ = ["app_server"]  # the fixture, imported for pytest


def first_ids(settings, n: int, **spec) -> list[str]:
    q = CatalogQuery(settings)
    try:
        return [r["sample_id"] for r in q.page(FilterSpec(**spec), limit=n).rows]
    finally:
        q.close()


def test_the_second_images_box_is_drawn_in_the_second_image_and_a_picked_box_stands_out(app_server):
    from playwright.sync_api import expect, sync_playwright

    url, settings = app_server
    (multi,) = first_ids(settings, 1, skills=["mi_object_object_relation"])
    (detection,) = first_ids(settings, 1, skills=["si_3d_detection"])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            # "The first image shows a chair (bbox ...) and the second image a trash can (bbox ...)"
            page.goto(f"{url}/Sample?id={multi}")
            expect(page.get_by_role("heading", name=f"Sample {multi}")).to_be_visible(timeout=WAIT_MS)
            wait_idle(page)
            second = page.get_by_text(re.compile(r"^image 2 · ")).first
            expect(second).to_be_visible(timeout=WAIT_MS)
            assert second.inner_text().endswith("· 1 box drawn in"), second.inner_text()
            shot(page, "sample-multi-image-boxes")

            # A detection sample's boxes as a table; picking a row highlights that box in the 3D view.
            page.goto(f"{url}/Sample?id={detection}")
            table = page.locator(f'.st-key-box_table_{detection} [data-testid="stDataFrame"]')
            expect(table).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text("yaw (°)").first).to_be_attached(timeout=WAIT_MS)
            wait_idle(page)
            box = table.bounding_box()
            page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)  # the first row's selection cell
            legend = page.locator('[data-testid="stPlotlyChart"] .legendtext')
            expect(legend.filter(has_text="(selected)")).to_have_count(1, timeout=WAIT_MS)
            wait_idle(page)
            shot(page, "sample-box-table-selected")
        finally:
            browser.close()


def test_after_approve_and_next_the_message_names_the_approved_sample_not_the_new_one(app_server):
    from playwright.sync_api import expect, sync_playwright

    url, settings = app_server
    first, second = first_ids(settings, 2, skills=["si_measurement"])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(f"{url}/Sample?skills=si_measurement&id={first}")
            expect(page.get_by_role("heading", name=f"Sample {first}")).to_be_visible(timeout=WAIT_MS)
            wait_idle(page)  # single-user: the machine's user acts, no name to type
            button(page, "btn_approve").click()
            page.wait_for_url(f"**/Sample?*id={second}*", timeout=WAIT_MS)
            expect(page.get_by_role("heading", name=f"Sample {second}")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text(f"Approved sample {first}. Now showing the next sample of the queue, {second}.")
                   ).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text("Not reviewed yet.")).to_be_visible()
            expect(page.get_by_text("Approved.", exact=True)).to_have_count(0)
            shot(page, "sample-approved-and-next")
        finally:
            browser.close()
    with open_state(settings.db_url) as db:
        assert review_for(db, first).verdict == "approve" and review_for(db, second) is None
