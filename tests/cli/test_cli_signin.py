"""The app launcher and sign-in: single-user on loopback says so, any other address needs sign-in configured in the
data home's secrets.toml, and a broken secrets file is refused naming the file and the key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from curation.labelstudio.server import pick_free_port
from curation.review.sign_in import SignInConfigError, is_loopback, sign_in_config
from curation.settings import Settings

REPO = Path(__file__).resolve().parents[2]
OIDC = """[auth]
redirect_uri = "https://curator.example.com/oauth2callback"
cookie_secret = "0123456789abcdef0123456789abcdef"
client_id = "vst-curator"
client_secret = "s3cret"
server_metadata_url = "https://idp.example.com/.well-known/openid-configuration"
"""


def launch(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "curation", "--home", str(home), "app", *args], cwd=REPO,
                            env={k: v for k, v in os.environ.items() if not k.startswith("CURATOR_")},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    os.killpg(proc.pid, signal.SIGTERM)  # the launcher and the streamlit server it started
    return proc.communicate(timeout=30)


def finished(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    """The launcher's exit code and stderr; a launcher still serving after ``timeout`` was not refused."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"the launcher is still serving after {timeout} s: it was not refused")
    return proc.returncode, err


def serves(proc: subprocess.Popen, port: int, timeout: float = 60) -> str:
    """Wait until the app answers on 127.0.0.1:port; then stop it and return what the launcher printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return stop(proc)[0]
        except OSError:
            time.sleep(0.25)
    stop(proc)
    pytest.fail(f"the app did not answer on port {port} within {timeout} s")


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.7", "curator.example.com"])
def test_serving_beyond_this_machine_without_sign_in_is_refused(home: Settings, address: str):
    code, err = finished(launch(home.home, "--address", address, "--port", str(pick_free_port())))

    assert code == 2
    assert f"refusing to serve on {address} without sign-in" in err
    assert str(home.home / "secrets.toml") in err and "[auth]" in err and "trusted_header" in err


def test_a_secrets_file_that_cannot_configure_sign_in_is_refused_naming_the_file_and_the_key(home: Settings):
    secrets = home.home / "secrets.toml"
    secrets.write_text(OIDC.replace('client_secret = "s3cret"\n', ""))

    code, err = finished(launch(home.home, "--address", "0.0.0.0", "--port", str(pick_free_port())))

    assert code == 2 and str(secrets) in err and "[auth] client_secret" in err


def test_on_loopback_without_sign_in_the_launcher_says_it_is_single_user(home: Settings):
    port = pick_free_port()
    out = serves(launch(home.home, "--port", str(port)), port)
    assert "single-user mode, no sign-in: this machine only" in out


def test_behind_an_authenticating_proxy_the_header_mode_may_listen_on_every_interface(home: Settings):
    (home.home / "secrets.toml").write_text('[curator]\ntrusted_header = "X-Forwarded-Email"\n')
    port = pick_free_port()
    out = serves(launch(home.home, "--address", "0.0.0.0", "--port", str(port)), port)
    assert "sign-in: the X-Forwarded-Email header of an authenticating proxy" in out


def test_which_sign_in_a_secrets_file_configures(home: Settings):
    secrets = home.home / "secrets.toml"
    assert sign_in_config(home).mode == "off"  # no file
    secrets.write_text(OIDC)
    oidc = sign_in_config(home)
    assert (oidc.mode, oidc.provider, oidc.issuer) == ("oidc", None, "https://idp.example.com/.well-known/"
                                                                     "openid-configuration")
    named = OIDC.replace('client_id = "vst-curator"', '[auth.company]\nclient_id = "vst-curator"')
    secrets.write_text(named)
    assert sign_in_config(home).provider == "company"

    for broken, says in [
        (OIDC + '[curator]\ntrusted_header = "X-Forwarded-Email"\n', "keep one way to sign in"),
        (OIDC.replace("/oauth2callback", "/"), "ending in /oauth2callback"),
        ('[curator]\ntrusted_header = "X-Email: evil"\n', "give an HTTP header name"),
        ("[auth\n", "not valid TOML"),
    ]:
        secrets.write_text(broken)
        with pytest.raises(SignInConfigError, match=says) as refused:
            sign_in_config(home)
        assert str(secrets) in str(refused.value)


def test_loopback_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "curator.example.com", ""]))
