"""Sign-in in a real browser: Streamlit's st.login against a real OIDC provider started locally, and the trusted
proxy header. The app runs with the launcher's own command line (curation.cli.app.app_command), so the data home's
secrets.toml reaches Streamlit the way it does in production. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from curation.cli.app import app_command
from curation.labelstudio.server import pick_free_port
from curation.review.actors import local_actor
from curation.review.roles import grant_role
from curation.settings import Settings
from db.engine import open_state
from tests.app.test_app_support import demo_app_home
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, REPO, WAIT_MS, shot, wait_healthy, wait_idle
from tests.support.oidc import (
    ALICE,
    VERA,
    confirm_sign_out_at_provider,
    running_provider,
    sign_in_at_provider,
    streamlit_secrets,
)
from tests.support.processes import stop_process

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 1000}
HEADER = "X-Forwarded-Email"


@contextmanager
def app_on(settings: Settings, port: int, log: Path, secrets_toml: str | None,
           address: str = "127.0.0.1") -> Iterator[str]:
    """The app as `python -m curation app` starts it, with ``secrets_toml`` as the data home's secrets file."""
    if secrets_toml is not None:
        (Path(settings.home) / "secrets.toml").write_text(secrets_toml)
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(app_command(settings, port, address), cwd=REPO, env={**os.environ}, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            wait_healthy(url, proc)
            yield url
        finally:
            stop_process(proc)


def grant(settings: Settings, **roles: str) -> None:
    with open_state(settings.db_url) as db:
        for who, role in roles.items():
            grant_role(db, local_actor(), who, role)


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed (`make test-deps` installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def sidebar(page):
    return page.locator('[data-testid="stSidebar"]')


def test_alice_signs_in_at_the_local_oidc_provider_and_the_page_shows_who_she_is(monkeypatch, tmp_path, demo_home,
                                                                                 browser):
    from playwright.sync_api import expect

    settings = demo_app_home(monkeypatch, tmp_path, demo_home)
    grant(settings, **{ALICE.email: "curator"})  # Vera has no grant: she signs in as a viewer
    port = pick_free_port()
    redirect = f"http://127.0.0.1:{port}/oauth2callback"
    with running_provider([redirect], tmp_path / "oidc.log") as provider, \
            app_on(settings, port, tmp_path / "streamlit.log", streamlit_secrets(provider, redirect)) as url:
        alice = browser.new_context(viewport=VIEWPORT).new_page()
        alice.goto(url)
        expect(alice.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
        expect(alice.get_by_text("Samples", exact=True)).to_have_count(0)  # nothing of the catalog before sign-in
        shot(alice, "signin-before")
        alice.get_by_role("button", name="Sign in").click()

        alice.wait_for_url(f"{provider.issuer}/interaction/**", timeout=WAIT_MS)  # the provider's own login page
        sign_in_at_provider(alice, ALICE, password="not-her-password")
        expect(alice.locator("#error")).to_have_text("Wrong login or password.", timeout=WAIT_MS)
        shot(alice, "signin-provider-refuses-a-wrong-password")
        sign_in_at_provider(alice, ALICE)

        alice.wait_for_url(f"{url}/**", timeout=WAIT_MS)
        expect(sidebar(alice).get_by_text("Signed in as Alice Example (alice@example.com) · curator")).to_be_visible(
            timeout=WAIT_MS)
        expect(alice.get_by_text("Samples", exact=True)).to_be_visible(timeout=WAIT_MS)  # the overview is there
        wait_idle(alice)
        shot(alice, "signin-alice-signed-in")

        # A second person in a browser of their own: no grant, so the default role.
        vera = browser.new_context(viewport=VIEWPORT).new_page()
        vera.goto(url)
        vera.get_by_role("button", name="Sign in").click(timeout=WAIT_MS)
        vera.wait_for_url(f"{provider.issuer}/interaction/**", timeout=WAIT_MS)
        sign_in_at_provider(vera, VERA)
        expect(sidebar(vera).get_by_text("Signed in as Vera Viewer (vera@example.com) · viewer")).to_be_visible(
            timeout=WAIT_MS)

        # Alice signs out: the sign-in button is back, Vera is still signed in.
        sidebar(alice).get_by_role("button", name="Sign out").click()
        alice.wait_for_url(f"{provider.issuer}/session/end**", timeout=WAIT_MS)  # the provider's session ends too
        confirm_sign_out_at_provider(alice)
        expect(alice.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
        vera.reload()
        expect(sidebar(vera).get_by_text("Signed in as Vera Viewer (vera@example.com) · viewer")).to_be_visible(
            timeout=WAIT_MS)


def test_behind_a_proxy_the_configured_header_names_the_person_and_a_request_without_it_is_refused(
        monkeypatch, tmp_path, demo_home, browser):
    from playwright.sync_api import expect

    settings = demo_app_home(monkeypatch, tmp_path, demo_home)
    grant(settings, **{"bob@example.com": "annotator"})
    secrets = f'[curator]\ntrusted_header = "{HEADER}"\n'
    with app_on(settings, pick_free_port(), tmp_path / "streamlit.log", secrets) as url:
        bob = browser.new_context(viewport=VIEWPORT, extra_http_headers={HEADER: "Bob@Example.com"}).new_page()
        bob.goto(url)
        expect(sidebar(bob).get_by_text("Signed in as bob@example.com · annotator")).to_be_visible(timeout=WAIT_MS)
        shot(bob, "signin-proxy-header")

        stranger = browser.new_context(viewport=VIEWPORT).new_page()  # reached the port without the proxy
        stranger.goto(url)
        expect(stranger.get_by_text(f"identifies people by the {HEADER} header")).to_be_visible(timeout=WAIT_MS)
        expect(stranger.get_by_text("Samples", exact=True)).to_have_count(0)


def this_machines_address() -> str | None:
    """An address of this machine other than loopback (`hostname -I`), or None."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    return next((a for a in out.split() if "." in a and not a.startswith("127.")), None)


def test_without_sign_in_the_header_is_not_trusted_and_only_this_machines_browsers_are_served(
        monkeypatch, tmp_path, demo_home, browser):
    from playwright.sync_api import expect

    settings = demo_app_home(monkeypatch, tmp_path, demo_home)
    port = pick_free_port()
    # Started by hand on every interface (bypassing the launcher, which would refuse): the page itself still
    # serves only this machine's browsers.
    with app_on(settings, port, tmp_path / "streamlit.log", None, address="0.0.0.0") as url:
        page = browser.new_context(viewport=VIEWPORT, extra_http_headers={HEADER: "mallory@example.com"}).new_page()
        page.goto(url)
        single_user = f"Single-user mode, no sign-in: acting as {local_actor().name}"
        expect(sidebar(page).get_by_text(single_user)).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_text("mallory")).to_have_count(0)

        address = this_machines_address()
        if address is None:
            pytest.skip("this machine has no address but loopback: a browser from elsewhere cannot be played")
        remote = browser.new_context(viewport=VIEWPORT).new_page()
        remote.goto(f"http://{address}:{port}")
        expect(remote.get_by_text("serves this machine only")).to_be_visible(timeout=WAIT_MS)
        expect(remote.get_by_text("Samples", exact=True)).to_have_count(0)
