"""How people sign in: Streamlit's OIDC sign-in or a trusted proxy header, from the data home's secrets.toml, or none.

The file is Streamlit's own secrets file (the launcher hands it to `streamlit run --secrets.files`): an ``[auth]``
table configures `st.login`; a ``[curator]`` table with ``trusted_header`` names the header an authenticating
proxy sets. Without either the server is single-user and serves only this machine (loopback).
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from curation.settings import Settings

SECRETS_FILE = "secrets.toml"
_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
_SHARED_KEYS = ("redirect_uri", "cookie_secret")
SIGN_IN_HELP = "README 'Sign-in' shows both ways"


class SignInConfigError(ValueError):
    """The secrets file cannot configure sign-in; the message names the file and the key."""


@dataclass(frozen=True)
class SignIn:
    """The server's sign-in: ``oidc`` (st.login, ``provider`` None for the [auth] table itself), ``header`` (the
    proxy's ``trusted_header``) or ``off`` (single user, loopback only)."""

    mode: Literal["oidc", "header", "off"]
    secrets_path: Path
    provider: str | None = None
    trusted_header: str | None = None
    issuer: str | None = None  # the OIDC server_metadata_url, for messages


def secrets_path(settings: Settings) -> Path:
    return Path(settings.home) / SECRETS_FILE


def _oidc(auth: dict[str, Any], path: Path) -> tuple[str | None, str]:
    """(provider name or None, server_metadata_url) of the [auth] table; SignInConfigError naming what is missing."""
    missing = [k for k in _SHARED_KEYS if not str(auth.get(k) or "").strip()]
    named = {k: v for k, v in auth.items() if isinstance(v, dict) and k != "client_kwargs"}
    if all(k in auth for k in _PROVIDER_KEYS) or not named:
        provider, table, where = None, auth, "[auth]"
    elif len(named) == 1:
        provider, table = next(iter(named.items()))
        where = f"[auth.{provider}]"
    else:
        raise SignInConfigError(f"{path}: [auth] names providers {', '.join(sorted(named))}; keep one (the app "
                                "offers one sign-in button)")
    missing += [f"{where} {k}" for k in _PROVIDER_KEYS if not str(table.get(k) or "").strip()]
    if missing:
        raise SignInConfigError(f"{path}: sign-in needs {', '.join(missing)} in [auth] ({SIGN_IN_HELP})")
    if not str(auth["redirect_uri"]).rstrip("/").endswith("/oauth2callback"):
        raise SignInConfigError(f"{path}: [auth] redirect_uri is {auth['redirect_uri']!r}; it must be the app's own "
                                "address ending in /oauth2callback, as registered with the provider")
    return provider, str(table["server_metadata_url"])


def sign_in_config(settings: Settings) -> SignIn:
    """The sign-in the data home's secrets.toml configures (``off`` when there is no file or it configures none)."""
    path = secrets_path(settings)
    if not path.is_file():
        return SignIn("off", path)
    try:
        with path.open("rb") as fh:
            secrets = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SignInConfigError(f"{path}: not valid TOML ({exc}); fix the file or remove it") from exc
    auth, curator = secrets.get("auth"), secrets.get("curator") or {}
    header = str(curator.get("trusted_header") or "").strip() if isinstance(curator, dict) else ""
    if auth and header:
        raise SignInConfigError(f"{path}: both [auth] and [curator] trusted_header are set; keep one way to sign in")
    if header:
        if not header.replace("-", "").isalnum():
            raise SignInConfigError(f"{path}: [curator] trusted_header is {header!r}; give an HTTP header name "
                                    "such as X-Forwarded-Email")
        return SignIn("header", path, trusted_header=header)
    if auth:
        if not isinstance(auth, dict):
            raise SignInConfigError(f"{path}: [auth] must be a table ({SIGN_IN_HELP})")
        provider, issuer = _oidc(auth, path)
        return SignIn("oidc", path, provider=provider, issuer=issuer)
    return SignIn("off", path)


def is_loopback(address: str) -> bool:
    """Whether a listen address serves this machine only (127.0.0.0/8, ::1, localhost)."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[] ")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def describe(sign_in: SignIn) -> str:
    """One line for the launcher: who can reach the server and how they are identified."""
    if sign_in.mode == "oidc":
        return f"sign-in: OpenID Connect via {sign_in.issuer} (Streamlit's st.login; secrets {sign_in.secrets_path})"
    if sign_in.mode == "header":
        return (f"sign-in: the {sign_in.trusted_header} header of an authenticating proxy (only the proxy may reach "
                "this port)")
    return (f"single-user mode, no sign-in: this machine only (configure sign-in in {sign_in.secrets_path} to serve "
            f"a team; {SIGN_IN_HELP})")


def refuse_unprotected(address: str, sign_in: SignIn) -> str | None:
    """Why serving on ``address`` is refused (a non-loopback address without sign-in), else None."""
    if sign_in.mode != "off" or is_loopback(address):
        return None
    return (f"refusing to serve on {address} without sign-in: anyone who reaches it could act as anyone. Configure "
            f"sign-in in {sign_in.secrets_path} ([auth] for OpenID Connect, or [curator] trusted_header behind an "
            f"authenticating proxy; {SIGN_IN_HELP}), or serve on 127.0.0.1")
