"""A real OpenID Connect provider for the sign-in tests: panva's oidc-provider (npm, OpenID Certified) on a free port.

`make test` installs it into .oidc/ (tests/support/oidc/package.json, pinned by its lock file); without it the tests
that need it are skipped, saying so. ``running_provider`` starts tests/support/oidc/provider.mjs with one confidential
client (the app, whose redirect URI the caller names) and the USERS below; its login page checks the password and
the client needs no consent page, so a browser signs in with one form (``sign_in_at_provider``). ``streamlit_secrets``
is the [auth] table the app's secrets.toml needs to use it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from curation.labelstudio.server import pick_free_port
from tests.support.processes import stop_process

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / ".oidc" / "node_modules"
PROVIDER_SCRIPT = Path(__file__).with_name("oidc") / "provider.mjs"


@dataclass(frozen=True)
class User:
    login: str
    password: str
    email: str
    name: str


# Two people who write and one who only looks (the tests grant their roles in the state database).
ALICE = User("alice", "alice-pw-4431", "alice@example.com", "Alice Example")
BOB = User("bob", "bob-pw-9127", "bob@example.com", "Bob Example")
VERA = User("vera", "vera-pw-2208", "vera@example.com", "Vera Viewer")
USERS = (ALICE, BOB, VERA)


@dataclass(frozen=True)
class OIDCProvider:
    issuer: str
    client_id: str
    client_secret: str

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


def require_provider() -> None:
    """Skip unless node and the installed provider are here (`make test` installs both)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the sign-in tests' OIDC provider runs on Node.js (>= 20)")
    if not (NODE_MODULES / "oidc-provider" / "lib" / "index.js").is_file():
        pytest.skip("the OIDC provider is not installed: `make oidc` (or `make test`) installs it into .oidc/")


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"oidc-provider exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"oidc-provider did not answer {url} within {timeout} s: {log.read_text()}")


@contextmanager
def running_provider(redirect_uris: list[str], log: Path, users: tuple[User, ...] = USERS) -> Iterator[OIDCProvider]:
    """The provider on a free 127.0.0.1 port with one client allowed to return to ``redirect_uris``."""
    require_provider()
    port = pick_free_port()
    provider = OIDCProvider(f"http://127.0.0.1:{port}", "vst-curator", secrets.token_urlsafe(24))
    client = {"client_id": provider.client_id, "client_secret": provider.client_secret,
              "redirect_uris": redirect_uris, "token_endpoint_auth_method": "client_secret_basic",
              "post_logout_redirect_uris": redirect_uris}  # Streamlit returns to /oauth2callback after sign-out
    env = {**os.environ, "OIDC_NODE_MODULES": str(NODE_MODULES), "OIDC_PORT": str(port),
           "OIDC_CLIENT": json.dumps(client),
           "OIDC_USERS": json.dumps({u.login: {"password": u.password, "email": u.email, "name": u.name}
                                     for u in users})}
    with log.open("w") as out:
        proc = subprocess.Popen(["node", str(PROVIDER_SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_ready(provider.metadata_url, proc, log)
            yield provider
        finally:
            stop_process(proc, timeout=10)


def streamlit_secrets(provider: OIDCProvider, redirect_uri: str) -> str:
    """The [auth] table of the app's secrets.toml for this provider (prompt=login: it offers no account chooser)."""
    return (
        "[auth]\n"
        f'redirect_uri = "{redirect_uri}"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        f'client_id = "{provider.client_id}"\n'
        f'client_secret = "{provider.client_secret}"\n'
        f'server_metadata_url = "{provider.metadata_url}"\n'
        'client_kwargs = { prompt = "login" }\n'
    )


def sign_in_at_provider(page, user: User, password: str | None = None) -> None:
    """On the provider's login page (Playwright), sign in as ``user`` (with another password to test a wrong one)."""
    page.locator("input[name=login]").fill(user.login)
    page.locator("input[name=password]").fill(user.password if password is None else password)
    page.get_by_role("button", name="Sign in").click()


def confirm_sign_out_at_provider(page) -> None:
    """On the provider's sign-out page (Streamlit sends the browser there on st.logout), confirm."""
    page.get_by_role("button", name="Yes, sign me out").click()
