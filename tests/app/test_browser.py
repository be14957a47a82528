"""The app in a real browser: Debian's Chromium driven by Playwright against `streamlit run` on a demo home.

Two curators at once, each signed in by the trusted proxy header: Alice filters to a skill, clicks a row, sees the
image and the 3D view, and flags the sample; Bob, in a second browser context, flags another sample at the same
moment. Both flags land in the state database under their own names, and Alice's is still there after a reload.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from curation.labelstudio.server import pick_free_port
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.actors import local_actor
from curation.review.flags import flags_for
from curation.review.roles import grant_role
from curation.settings import Settings
from db.engine import open_state
from tests.app.test_app_support import REPO, demo_app_home
from tests.support.processes import stop_process

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts"
WAIT_MS = 60_000  # generous: software WebGL draws the 3D view slowly on a small CI machine
SKILL = "si_3d_detection"
VIEWPORT = {"width": 1400, "height": 1900}  # tall: Streamlit scrolls inside the page, screenshots show the viewport
PROXY_HEADER = "X-Forwarded-Email"


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"streamlit did not answer {url}/_stcore/health within {timeout} s")


@pytest.fixture
def app_server(monkeypatch, tmp_path, demo_home):
    """`streamlit run app/Home.py` on a free port, on the demo catalog with a state database of its own."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed (`make test-deps` installs it)")
    pytest.importorskip("playwright.sync_api")
    settings = demo_app_home(monkeypatch, tmp_path, demo_home)
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "Home.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO, env={**os.environ}, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(url, proc)
        yield url, settings
    finally:
        stop_process(proc)
        log.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=True)


def wait_for_sample_view(page, expect) -> None:
    """The image has decoded and the 3D view has a WebGL canvas."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')].some(i => i.complete && "
        "i.naturalWidth > 0)", timeout=WAIT_MS)
    expect(page.locator('[data-testid="stPlotlyChart"] .gl-container canvas').first).to_be_attached(timeout=WAIT_MS)


def button(page, key: str):
    """The live button with a Streamlit key (during a rerun the old copy lingers, marked stale)."""
    return page.locator(f'.st-key-{key}[data-stale="false"] button').first


def wait_idle(page) -> None:
    """The script run has finished: no element is stale and the running indicator is gone."""
    page.wait_for_function(
        "() => !document.querySelector('[data-stale=\"true\"]') && "
        "!document.querySelector('[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')",
        timeout=WAIT_MS)


def behind_a_proxy(settings: Settings, **roles: str) -> None:
    """The running app identifies people by the PROXY_HEADER an authenticating proxy sets (the data home's
    secrets.toml, read on every page run), and ``roles`` are granted (email=role)."""
    (Path(settings.home) / "secrets.toml").write_text(f'[curator]\ntrusted_header = "{PROXY_HEADER}"\n')
    with open_state(settings.db_url) as db:
        for who, role in roles.items():
            grant_role(db, local_actor(), who, role)


def signed_in_as(page, expect, email: str, role: str) -> None:
    expect(page.locator('[data-testid="stSidebar"]').get_by_text(f"Signed in as {email} · {role}")).to_be_visible(
        timeout=WAIT_MS)
    wait_idle(page)


def test_two_curators_flag_samples_at_once_and_the_flags_survive_a_reload(app_server):
    from playwright.sync_api import expect, sync_playwright

    url, settings = app_server
    alice_email, bob_email = "alice@example.com", "bob@example.com"
    behind_a_proxy(settings, **{alice_email: "curator", bob_email: "curator"})
    q = CatalogQuery(settings)
    try:
        ids = [r["sample_id"] for r in q.page(FilterSpec(skills=[SKILL]), limit=3).rows]
    finally:
        q.close()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            alice = browser.new_context(viewport=VIEWPORT, extra_http_headers={PROXY_HEADER: alice_email}).new_page()
            bob = browser.new_context(viewport=VIEWPORT, extra_http_headers={PROXY_HEADER: bob_email}).new_page()

            # Alice filters Browse to one skill; the filter goes into the URL.
            alice.goto(f"{url}/Browse")
            expect(alice.locator('[data-testid="stDataFrame"]')).to_be_visible(timeout=WAIT_MS)
            skill_input = alice.locator(".st-key-flt_skills input")
            skill_input.click()
            skill_input.fill(SKILL)
            alice.keyboard.press("Enter")
            alice.keyboard.press("Escape")
            expect(alice.get_by_text(f"samples match · skills={SKILL}")).to_be_visible(timeout=WAIT_MS)
            assert f"skills={SKILL}" in alice.url
            shot(alice, "1-browse-filtered")

            # She clicks the first row's text (its box would tick it for a bulk action) and lands on that sample,
            # the filter kept. Rows are 44 px high (room for a thumbnail) under a 35 px header.
            # The skill box still has the focus and takes the next click away from the grid (it closes its
            # search): click the title first, as a curator moving on does, and let the filter's rerun settle. The
            # grid takes a click once it has seen the pointer: its toolbar showing says so.
            alice.locator("h1").first.click()
            wait_idle(alice)
            grid = alice.locator('[data-testid="stDataFrame"]').bounding_box()
            alice.mouse.move(grid["x"] + 200, grid["y"] + 35 + 22)
            expect(alice.locator('[data-testid="stElementToolbar"]').first).to_be_visible(timeout=WAIT_MS)
            alice.mouse.click(grid["x"] + 200, grid["y"] + 35 + 22)
            alice.wait_for_url(f"**/Sample?*id={ids[0]}*", timeout=WAIT_MS)
            assert f"skills={SKILL}" in alice.url
            expect(alice.get_by_role("heading", name=f"Sample {ids[0]}")).to_be_visible(timeout=WAIT_MS)
            wait_for_sample_view(alice, expect)
            shot(alice, "2-sample-view")

            # Bob opens another sample of the same filter in his own browser context.
            bob.goto(f"{url}/Sample?skills={SKILL}&id={ids[1]}")
            expect(bob.get_by_role("heading", name=f"Sample {ids[1]}")).to_be_visible(timeout=WAIT_MS)
            signed_in_as(alice, expect, alice_email, "curator")
            signed_in_as(bob, expect, bob_email, "curator")
            for page, note in ((alice, "box floats above the floor"), (bob, "wrong label")):
                page.get_by_placeholder("note (optional)").fill(note)
                page.get_by_placeholder("note (optional)").press("Enter")  # commit the note (a rerun)
                wait_idle(page)

            # Both press Flag at the same moment.
            button(alice, "btn_flag").click(no_wait_after=True)
            button(bob, "btn_flag").click(no_wait_after=True)
            expect(alice.get_by_text(f"wrong_answer by {alice_email} — box floats above the floor")).to_be_visible(
                timeout=WAIT_MS)
            expect(bob.get_by_text(f"wrong_answer by {bob_email} — wrong label")).to_be_visible(timeout=WAIT_MS)
            shot(bob, "3-second-curator-flagged")

            # A reload shows Alice her flag again, and still knows who she is.
            alice.reload()
            expect(alice.get_by_text(f"wrong_answer by {alice_email} — box floats above the floor")).to_be_visible(
                timeout=WAIT_MS)
            signed_in_as(alice, expect, alice_email, "curator")
            wait_for_sample_view(alice, expect)
            shot(alice, "4-after-reload")

            # The keyboard steps the review queue: j is the next sample of the filter.
            wait_idle(alice)
            alice.locator("h1").first.click()
            alice.keyboard.press("j")
            alice.wait_for_url(f"**/Sample?*id={ids[1]}*", timeout=WAIT_MS)
            expect(alice.get_by_text(f"wrong_answer by {bob_email} — wrong label")).to_be_visible(timeout=WAIT_MS)
        finally:
            browser.close()

    with open_state(settings.db_url) as db:
        assert [(f.reason, f.who, f.note) for f in flags_for(db, ids[0])] == [
            ("wrong_answer", alice_email, "box floats above the floor")]
        assert [(f.reason, f.who, f.note) for f in flags_for(db, ids[1])] == [("wrong_answer", bob_email,
                                                                                "wrong label")]
