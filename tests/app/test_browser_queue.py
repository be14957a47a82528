"""Two signed-in reviewers work one queue in a real browser: Alice (an admin) and Bob (an annotator) sign in at the
local OIDC provider in two browser contexts and each work a queue of 3 samples with overlap 2. Every sample ends with
two verdicts by different people; Bob does not see Alice's verdict on a sample until he has submitted his own; their
one disagreement is on the Team page's conflicts list (Bob reads it, only Alice may settle it), and the agreement
view shows the numbers. With Bob's role taken away while his page is open, his next press is refused by the domain
layer. Screenshots: test-artifacts/queue.png (Bob's sample, blind), queue-verdicts.png (after he submits),
team-queues.png, conflicts.png and agreement.png."""

from __future__ import annotations

import pytest

from curation.labelstudio.server import pick_free_port
from curation.presenters.team import conflict_tag
from curation.query.catalog import CatalogQuery
from curation.query.filters import FilterSpec
from curation.review.actors import local_actor
from curation.review.assignment import conflicts, create_queue, queue_progress, verdicts_visible_to
from db.engine import open_state
from tests.app.test_app_support import demo_app_home
from tests.app.test_browser import ARTIFACTS, WAIT_MS, button, wait_idle
from tests.app.test_browser_signin import VIEWPORT, app_on, browser, grant, sidebar  # noqa: F401 - browser: fixture
from tests.support.oidc import ALICE, BOB, User, running_provider, sign_in_at_provider, streamlit_secrets

pytestmark = pytest.mark.browser

SKILL = "si_distance"


def signed_in(browser, url: str, issuer: str, user: User, role: str):  # noqa: F811 - the fixture's value
    """A browser context of ``user``'s own, signed in at the provider."""
    from playwright.sync_api import expect

    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(url)
    page.get_by_role("button", name="Sign in").click(timeout=WAIT_MS)
    page.wait_for_url(f"{issuer}/interaction/**", timeout=WAIT_MS)
    sign_in_at_provider(page, user)
    page.wait_for_url(f"{url}/**", timeout=WAIT_MS)
    expect(sidebar(page).get_by_text(f"Signed in as {user.name} ({user.email}) · {role}")).to_be_visible(
        timeout=WAIT_MS)
    return page


def take_next(page, expect, sample_id: str) -> None:
    """Press Next sample and see ``sample_id`` reserved."""
    button(page, "btn_next").click()
    expect(page.get_by_role("heading", name=f"Sample {sample_id}")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("Reserved for you until")).to_be_visible(timeout=WAIT_MS)
    wait_idle(page)


def judge(page, expect, key: str, word: str) -> None:
    button(page, key).click()
    expect(page.get_by_text("Your verdict on")).to_contain_text(word, timeout=WAIT_MS)
    wait_idle(page)


def test_two_reviewers_work_one_queue_blind_until_both_are_in(monkeypatch, tmp_path, demo_home, browser):  # noqa: F811
    from playwright.sync_api import expect

    settings = demo_app_home(monkeypatch, tmp_path, demo_home)
    grant(settings, **{ALICE.email: "admin", BOB.email: "annotator"})
    q = CatalogQuery(settings)
    try:
        items = [(r["sample_id"], r["skill"]) for r in q.page(FilterSpec(skills=[SKILL]), limit=3).rows]
    finally:
        q.close()
    ids = [sid for sid, _ in items]
    with open_state(settings.db_url) as db:
        queue = create_queue(db, local_actor(), "distances", items, filter_link=f"?skills={SKILL}", overlap=2)
    port = pick_free_port()
    redirect = f"http://127.0.0.1:{port}/oauth2callback"
    with running_provider([redirect], tmp_path / "oidc.log") as provider, \
            app_on(settings, port, tmp_path / "streamlit.log", streamlit_secrets(provider, redirect)) as url:
        work = f"{url}/Review_Queue?queue={queue.id}"
        alice = signed_in(browser, url, provider.issuer, ALICE, "admin")
        bob = signed_in(browser, url, provider.issuer, BOB, "annotator")

        # Alice takes the first sample and approves it.
        alice.goto(work)
        expect(alice.get_by_text("Press Next sample to take one.")).to_be_visible(timeout=WAIT_MS)
        take_next(alice, expect, ids[0])
        alice.get_by_placeholder("note (optional)").fill("looks right to me")
        alice.get_by_placeholder("note (optional)").press("Enter")
        wait_idle(alice)
        judge(alice, expect, "btn_approve", "approved")

        # Bob gets the same sample (its second place) and sees nothing of Alice's verdict before he submits his.
        bob.goto(work)
        take_next(bob, expect, ids[0])
        expect(bob.get_by_text("Blind review")).to_be_visible(timeout=WAIT_MS)
        expect(bob.get_by_text(ALICE.email)).to_have_count(0)
        expect(bob.get_by_text("looks right to me")).to_have_count(0)
        bob.wait_for_function(  # the sample's image has decoded
            "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')].some(i => i.complete && "
            "i.naturalWidth > 0)", timeout=WAIT_MS)
        ARTIFACTS.mkdir(exist_ok=True)
        bob.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)
        judge(bob, expect, "btn_reject", "rejected")
        verdicts = bob.locator('[data-testid="stTable"]')
        expect(verdicts).to_contain_text(ALICE.email, timeout=WAIT_MS)
        expect(verdicts).to_contain_text("looks right to me")
        expect(verdicts).to_contain_text(BOB.email)
        bob.screenshot(path=str(ARTIFACTS / "queue-verdicts.png"), full_page=True)

        # The keyboard works the queue too: j takes the next sample, a approves it.
        bob.locator("h1").first.click()
        bob.keyboard.press("j")
        expect(bob.get_by_role("heading", name=f"Sample {ids[1]}")).to_be_visible(timeout=WAIT_MS)
        wait_idle(bob)
        bob.locator("h1").first.click()
        bob.keyboard.press("a")
        expect(bob.get_by_text("Your verdict on")).to_contain_text("approved", timeout=WAIT_MS)
        wait_idle(bob)

        # Alice goes on to the second sample (Bob's verdict shows once hers is in) and the third.
        take_next(alice, expect, ids[1])
        judge(alice, expect, "btn_approve", "approved")
        expect(alice.locator('[data-testid="stTable"]')).to_contain_text(BOB.email, timeout=WAIT_MS)
        take_next(alice, expect, ids[2])
        judge(alice, expect, "btn_reject", "rejected")
        take_next(bob, expect, ids[2])
        judge(bob, expect, "btn_reject", "rejected")
        button(bob, "btn_next").click()
        expect(bob.get_by_text("Nothing left for you")).to_be_visible(timeout=WAIT_MS)
        wait_idle(bob)

        # An admin takes Bob's role away while his page is open: his next press is refused by the domain layer,
        # said on the page, and nothing is undone.
        grant(settings, **{BOB.email: "viewer"})
        button(bob, "rq_undo").click()
        expect(bob.get_by_text("has the role 'viewer', which may not undo")).to_be_visible(timeout=WAIT_MS)
        expect(bob.get_by_text("your role may look but not review")).to_be_visible(timeout=WAIT_MS)

        # Bob may read the Team page, not change it; Alice, an admin, finds the conflict and the agreement numbers.
        bob.goto(f"{url}/Team")
        expect(bob.get_by_text("this page is read-only for you")).to_be_visible(timeout=WAIT_MS)
        bob.get_by_role("tab", name="Conflicts").click()
        tag = conflict_tag(queue.id, ids[0])
        expect(bob.locator(f".st-key-team_conflict_{tag}")).to_contain_text(ids[0], timeout=WAIT_MS)
        expect(bob.locator(f".st-key-team_adj_reject_{tag}")).to_have_count(0)
        alice.goto(f"{url}/Team")
        expect(alice.get_by_text("2 of 3 samples settled")).to_be_visible(timeout=WAIT_MS)  # the Queues tab
        wait_idle(alice)
        alice.screenshot(path=str(ARTIFACTS / "team-queues.png"), full_page=True)
        alice.get_by_role("tab", name="Conflicts").click()
        conflict = alice.locator(f".st-key-team_conflict_{tag}")
        expect(conflict).to_contain_text(ids[0], timeout=WAIT_MS)
        expect(conflict).to_contain_text(ALICE.email)
        expect(conflict).to_contain_text(BOB.email)
        expect(button(alice, f"team_adj_reject_{tag}")).to_be_visible()
        assert "tab=Conflicts" in alice.url  # the open tab is in the link
        wait_idle(alice)
        alice.wait_for_timeout(500)  # the tab's underline slides over (a picture, not a check)
        alice.screenshot(path=str(ARTIFACTS / "conflicts.png"), full_page=True)
        alice.get_by_role("tab", name="Agreement").click()
        expect(alice.get_by_text("Samples with ≥ 2 verdicts")).to_be_visible(timeout=WAIT_MS)
        metrics = alice.locator('[data-testid="stMetricValue"]')
        expect(metrics.nth(0)).to_have_text("3")
        expect(metrics.nth(1)).to_have_text("6")
        expect(metrics.nth(2)).to_have_text("67%")
        # Two agreements (one approve, one reject) and one disagreement in 3 pairs: alpha = 1 - (2/6) / (18/30) = 4/9.
        expect(metrics.nth(3)).to_have_text("0.444")
        expect(alice.locator('[data-testid="stPlotlyChart"]')).to_be_visible(timeout=WAIT_MS)
        wait_idle(alice)
        alice.wait_for_timeout(500)
        alice.screenshot(path=str(ARTIFACTS / "agreement.png"), full_page=True)

    with open_state(settings.db_url) as db:
        for sid in ids:  # two verdicts by different people on every sample
            whos = [v.who for v in verdicts_visible_to(db, local_actor(), queue.id, sid)]
            assert sorted(whos) == [ALICE.email, BOB.email], sid
        p = queue_progress(db, queue.id)
        assert (p.n_samples, p.n_done, p.n_conflicts) == (3, 2, 1)  # two agreed, one conflict
        assert p.per_reviewer == {ALICE.email: 3, BOB.email: 3}  # Bob's refused undo took nothing back
        assert [c.sample_id for c in conflicts(db, queue.id)] == [ids[0]]
