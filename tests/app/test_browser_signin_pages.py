"""Browse and Sample behind OIDC sign-in, in a real browser against the local OIDC provider: a link opened by someone
signed out shows the sign-in button and nothing of the catalog; a viewer sees the samples but no write button; a
curator's flag records the curator's email, and her click after an admin took her role away is refused. Screenshots
go to test-artifacts/ (signin.png: the sign-in page)."""

from __future__ import annotations

import pytest

from curation.labelstudio.server import pick_free_port
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.audit import history
from curation.review.flags import flags_for
from db.engine import open_state
from tests.app.test_app_support import demo_app_home
from tests.app.test_browser import ARTIFACTS, WAIT_MS, button, shot, wait_idle
from tests.app.test_browser_signin import VIEWPORT, app_on, browser, grant, sidebar
from tests.support.oidc import ALICE, VERA, running_provider, sign_in_at_provider, streamlit_secrets

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the fixture, imported for pytest

SKILL = "si_distance"


def signed_in(context_page, url: str, provider, user, role: str, expect) -> None:
    """Sign ``user`` in from the app's own sign-in button, at the provider's login page, and back."""
    context_page.goto(url)
    context_page.get_by_role("button", name="Sign in").click(timeout=WAIT_MS)
    context_page.wait_for_url(f"{provider.issuer}/interaction/**", timeout=WAIT_MS)
    sign_in_at_provider(context_page, user)
    context_page.wait_for_url(f"{url}/**", timeout=WAIT_MS)
    expect(sidebar(context_page).get_by_text(f"Signed in as {user.name} ({user.email}) · {role}")).to_be_visible(
        timeout=WAIT_MS)


def test_browse_and_sample_ask_for_sign_in_then_offer_each_role_only_what_it_may_do(monkeypatch, tmp_path, demo_home,
                                                                                     browser):
    from playwright.sync_api import expect

    settings = demo_app_home(monkeypatch, tmp_path, demo_home)
    grant(settings, **{ALICE.email: "curator"})  # Vera has no grant: a viewer
    q = CatalogQuery(settings)
    try:
        first, second = (r["sample_id"] for r in q.page(FilterSpec(skills=[SKILL]), limit=2).rows)
    finally:
        q.close()
    port = pick_free_port()
    redirect = f"http://127.0.0.1:{port}/oauth2callback"
    with running_provider([redirect], tmp_path / "oidc.log") as provider, \
            app_on(settings, port, tmp_path / "streamlit.log", streamlit_secrets(provider, redirect)) as url:
        # A shared link opened by someone signed out: the sign-in button, nothing of the catalog.
        stranger = browser.new_context(viewport=VIEWPORT).new_page()
        stranger.goto(f"{url}/Browse?skills={SKILL}")
        expect(stranger.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
        wait_idle(stranger)
        expect(stranger.locator('[data-testid="stDataFrame"]')).to_have_count(0)
        expect(stranger.get_by_text("samples match")).to_have_count(0)
        ARTIFACTS.mkdir(exist_ok=True)
        stranger.screenshot(path=str(ARTIFACTS / "signin.png"), full_page=True)
        stranger.goto(f"{url}/Sample?skills={SKILL}&id={first}")
        expect(stranger.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
        wait_idle(stranger)
        expect(stranger.get_by_text(first)).to_have_count(0)  # not even the id in a title
        expect(stranger.locator('[data-testid="stImage"]')).to_have_count(0)

        # Vera, a viewer, sees the samples and no write button, with a note saying why and who grants roles.
        vera = browser.new_context(viewport=VIEWPORT).new_page()
        signed_in(vera, url, provider, VERA, "viewer", expect)
        vera.goto(f"{url}/Browse?skills={SKILL}")
        expect(vera.locator('[data-testid="stDataFrame"]')).to_be_visible(timeout=WAIT_MS)
        expect(vera.get_by_text("has the role viewer, which may not act on many samples at once")).to_be_visible(
            timeout=WAIT_MS)
        wait_idle(vera)
        for key in ("bulk_apply", "bulk_confirm", "bulk_undo"):
            expect(vera.locator(f".st-key-{key}")).to_have_count(0)
        expect(vera.get_by_text("Send ")).to_have_count(0)  # no Label Studio push either
        shot(vera, "signin-viewer-browse")
        vera.goto(f"{url}/Sample?skills={SKILL}&id={first}")
        expect(vera.get_by_role("heading", name=f"Sample {first}")).to_be_visible(timeout=WAIT_MS)
        looks_only = "has the role viewer, which may not flag, approve, reject, fix or undo;"
        expect(vera.get_by_text(looks_only)).to_be_visible(timeout=WAIT_MS)
        expect(vera.get_by_text("python -m curation roles grant").first).to_be_visible()
        wait_idle(vera)
        for key in ("btn_approve", "btn_reject", "btn_flag", "btn_undo"):
            expect(vera.locator(f".st-key-{key}")).to_have_count(0)
        expect(vera.get_by_text("Fix the answer or the reasoning")).to_have_count(0)
        vera.locator("h1").first.click()
        vera.keyboard.press("f")  # the flag key presses nothing: there is no flag button
        vera.keyboard.press("a")
        wait_idle(vera)
        shot(vera, "signin-viewer-sample")

        # Alice, a curator, flags the second sample: the flag is hers, by the email she signed in with.
        alice = browser.new_context(viewport=VIEWPORT).new_page()
        signed_in(alice, url, provider, ALICE, "curator", expect)
        alice.goto(f"{url}/Sample?skills={SKILL}&id={second}")
        expect(alice.get_by_role("heading", name=f"Sample {second}")).to_be_visible(timeout=WAIT_MS)
        wait_idle(alice)
        alice.get_by_placeholder("note (optional)").fill("cm, not m")
        alice.get_by_placeholder("note (optional)").press("Enter")
        wait_idle(alice)
        button(alice, "btn_flag").click()
        expect(alice.get_by_text(f"wrong_answer by {ALICE.email} — cm, not m")).to_be_visible(timeout=WAIT_MS)
        shot(alice, "signin-curator-flagged")
        # An admin takes her role away while her page still shows Approve: the click acts with the role held now.
        grant(settings, **{ALICE.email: "viewer"})
        button(alice, "btn_approve").click()
        expect(alice.get_by_text(f"{ALICE.email} has the role 'viewer', which may not review")).to_be_visible(
            timeout=WAIT_MS)

    with open_state(settings.db_url) as db:
        assert flags_for(db, first) == [] and history(db, first) == []  # the viewer's keys wrote nothing
        assert [(f.reason, f.who, f.note) for f in flags_for(db, second)] == [("wrong_answer", ALICE.email,
                                                                                "cm, not m")]
        assert [(e.who, e.action) for e in history(db, second)] == [(ALICE.email, "flag_added")]  # no approval
