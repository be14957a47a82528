"""Every page in a real browser on a machine with no way out: nothing the pages ask for may leave 127.0.0.1.

A curator opens Home, Browse, a sample, Checks, Mixtures and Label Studio in Chromium; every request the pages
make (documents, scripts, fonts, favicons, images, websockets) is recorded and must go to the app itself. Today a
Material Symbol given as a page icon makes Streamlit's frontend fetch the favicon from fonts.gstatic.com, which an
offline machine cannot reach.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from curation.labelstudio.server import pick_free_port
from curation.presenters.checks import browse_spec_for
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from tests.app.test_app_support import demo_app_home
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, WAIT_MS, app_server, shot, wait_idle

__all__ = ["app_server"]  # the fixture, imported for pytest
pytestmark = pytest.mark.browser

LOCAL_SCHEMES = {"data", "blob", "about", "chrome-extension"}  # never leave the browser
# What shows once a page has drawn its heaviest part (charts, the table, the image); the title for the others.
TITLE = '[data-testid="stMainBlockContainer"] h1'
READY = {"Home": ".st-key-by_skill .main-svg", "Browse": '[data-testid="stDataFrame"]',
         "Sample": '[data-testid="stImage"] img', "Checks": ".st-key-chk_heatmap .main-svg", "Mixtures": TITLE,
         "Label Studio": TITLE}


def outside(url: str, app: str) -> bool:
    """Whether a request would leave the machine (anything but the app's own host and the browser's own schemes)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return False
    return parts.hostname != urlsplit(app).hostname


def test_no_page_fetches_anything_from_outside_the_machine(app_server):
    from playwright.sync_api import expect, sync_playwright

    url, settings = app_server
    q = CatalogQuery(settings)
    try:
        sample_id = q.page(FilterSpec(), limit=1).rows[0]["sample_id"]
    finally:
        q.close()
    pages = {"Home": "", "Browse": "/Browse", "Sample": f"/Sample?id={sample_id}", "Checks": "/Checks",
             "Mixtures": "/Mixtures", "Label Studio": "/Label_Studio"}
    requested: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            current = {"page": ""}
            # Every request of every frame and worker of the context, websockets included.
            context.on("request", lambda r: requested.setdefault(current["page"], []).append(r.url))
            page.on("websocket", lambda ws: requested.setdefault(current["page"], []).append(ws.url))
            for name, path in pages.items():
                current["page"] = name
                page.goto(f"{url}{path}")
                expect(page.locator(READY[name]).first).to_be_visible(timeout=WAIT_MS)
                wait_idle(page)
                page.wait_for_load_state("networkidle", timeout=WAIT_MS)
                # The tab's icon is a request of its own (the frontend sets it once the script has run).
                icon = page.evaluate("() => document.querySelector(\"link[rel='shortcut icon']\")?.href || ''")
                requested[name].append(icon)
                shot(page, f"offline-{name.lower().replace(' ', '_')}")
        finally:
            browser.close()
    assert set(requested) == set(pages)
    leaving = {name: sorted({u for u in urls if outside(u, url)}) for name, urls in requested.items()}
    assert not any(leaving.values()), f"requests that leave the machine: {leaving}"


def test_a_click_on_a_bar_or_a_heatmap_cell_opens_its_samples_in_browse(app_server):
    """Home: the largest skill's bar opens Browse on that skill. Checks: a cell of the failures heatmap (here an
    ingest problem of the demo, which needs no check run) opens Browse on its failing samples, in one click."""
    from playwright.sync_api import sync_playwright

    url, settings = app_server
    q = CatalogQuery(settings)
    try:
        skills = q.facets(FilterSpec(), ["skills"])["skills"]
    finally:
        q.close()
    largest = max(skills, key=lambda s: (skills[s], s))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(url)
            bars = page.locator(".st-key-by_skill .bars .point path")
            bars.first.wait_for(timeout=WAIT_MS)
            bars.last.click(force=True)  # plotly draws the largest bar last (at the top)
            page.wait_for_url(f"**/Browse?skills={largest}", timeout=WAIT_MS)

            page.goto(f"{url}/Checks")
            cells = page.locator(".st-key-chk_heatmap .scatterlayer .point")
            cells.first.wait_for(timeout=WAIT_MS)
            custom = page.evaluate(
                "() => document.querySelector('.st-key-chk_heatmap .js-plotly-plot').data[1].customdata")
            i = next(k for k, c in enumerate(custom) if c[0] > 0)  # [failed, checked, rate, check, skill id]
            cells.nth(i).click(force=True)
            page.wait_for_url("**/Browse?**", timeout=WAIT_MS)
            shot(page, "heatmap-cell-to-browse")
            opened = FilterSpec.from_query_params(dict(parse_qsl(urlsplit(page.url).query)))
        finally:
            browser.close()
    assert opened == browse_spec_for(custom[i][3], custom[i][4])


def test_behind_the_proxy_an_annotator_is_offered_no_run_export_or_push_and_a_curator_is(monkeypatch, tmp_path,
                                                                                          demo_home):
    """The pages offer the writes the person's role allows; the domain layer refuses the others whatever a page
    shows (test_job_roles.py, test_export_roles.py, test_labelstudio_roles.py)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed (`make test-deps` installs it)")
    from playwright.sync_api import expect, sync_playwright

    from tests.app.test_browser_signin import HEADER, app_on, grant

    settings = demo_app_home(monkeypatch, tmp_path, demo_home)
    grant(settings, **{"ann@example.com": "annotator", "cy@example.com": "curator"})
    writes = {"Checks": ".st-key-chk_queue", "Mixtures": ".st-key-mix_export", "Label_Studio": ".st-key-ls_push_btn"}
    secrets = f'[curator]\ntrusted_header = "{HEADER}"\n'
    with app_on(settings, pick_free_port(), tmp_path / "streamlit.log", secrets) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            for who, role in (("ann@example.com", "annotator"), ("cy@example.com", "curator")):
                page = browser.new_context(viewport=VIEWPORT, extra_http_headers={HEADER: who}).new_page()
                for name, button in writes.items():
                    page.goto(f"{url}/{name}")
                    if role == "annotator":
                        expect(page.get_by_text("Your role (annotator) may").first).to_be_visible(timeout=WAIT_MS)
                        wait_idle(page)
                        expect(page.locator(button)).to_have_count(0)
                        if name == "Label_Studio":  # the empty state does not tell them to push
                            expect(page.get_by_text("No project yet: once a curator pushes samples")).to_be_visible()
                        shot(page, f"roles-annotator-{name.lower()}")
                    else:
                        expect(page.locator(button)).to_be_visible(timeout=WAIT_MS)
                        expect(page.get_by_text("Your role (")).to_have_count(0)
        finally:
            browser.close()
