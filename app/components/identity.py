"""Who is using this page: the signed-in Actor (OIDC via st.login, or the proxy's trusted header), or the local user."""

from __future__ import annotations

import streamlit as st

from app.components import data
from app.components.text import plain
from curation.review.actors import Actor, local_actor
from curation.review.roles import actor_for
from curation.review.sign_in import SignIn, SignInConfigError, sign_in_config


def _stop(message: str) -> None:
    st.error(message)
    st.stop()


def _remote_client() -> bool:
    """Whether this session's browser is on another machine (Streamlit reports no address for this machine's own;
    AppTest hands a stand-in object, not an address)."""
    address = st.context.ip_address
    return isinstance(address, str) and bool(address)


def _oidc_actor(sign_in: SignIn) -> Actor:
    if not st.user.is_logged_in:
        st.info("VST Curator on this server needs you to sign in.")
        st.button("Sign in", key="identity_sign_in", type="primary", on_click=st.login,
                  args=(sign_in.provider,) if sign_in.provider else ())
        st.stop()
    email, name = st.user.get("email"), st.user.get("name")
    return actor_for(data.state_db(), str(name) if name else None, str(email) if email else None)


def _header_actor(sign_in: SignIn) -> Actor:
    value = (st.context.headers.get(sign_in.trusted_header or "") or "").strip()
    if not value:
        _stop(f"This server identifies people by the {sign_in.trusted_header} header its sign-in proxy sets, and "
              "this request has none: open the app through the proxy's address.")
    return actor_for(data.state_db(), None, value) if "@" in value else actor_for(data.state_db(), value, None)


def signed_in() -> Actor:
    """The Actor of this session, shown in the sidebar; stops the page with a sign-in button (OIDC) or a reason
    (no proxy header, a broken secrets file, a single-user server reached from another machine) when there is none."""
    try:
        sign_in = sign_in_config(data.settings())
    except SignInConfigError as exc:  # fail closed: a broken sign-in never falls back to single-user
        _stop(f"Sign-in is misconfigured: {plain(exc)}")
    try:
        if sign_in.mode == "oidc":
            actor = _oidc_actor(sign_in)
        elif sign_in.mode == "header":
            actor = _header_actor(sign_in)
        else:
            if _remote_client():
                _stop("This server runs in single-user mode without sign-in and serves this machine only; "
                      "configure sign-in to share it (README 'Sign-in').")
            actor = local_actor()
    except data.AppDataError as exc:
        _stop(plain(exc))
    except Exception as exc:  # the state database holds the roles: without it no one can be identified
        _stop(f"Cannot look up your role in the state database: {plain(exc)}")
    who = actor.name if actor.email in (None, actor.name) else f"{actor.name} ({actor.email})"
    if sign_in.mode == "off":
        st.sidebar.caption(f"Single-user mode, no sign-in: acting as {plain(who)}")
    else:
        st.sidebar.caption(f"Signed in as {plain(who)} · {actor.role}")
        if sign_in.mode == "oidc":
            st.sidebar.button("Sign out", key="identity_sign_out", on_click=st.logout)
    return actor


def as_now(actor: Actor) -> Actor:
    """The same person with the role the state database holds now: a button callback carries the Actor of the run
    that drew the button, and an admin may have changed that role since. Single-user mode keeps its one user."""
    if sign_in_config(data.settings()).mode == "off":
        return actor
    return actor_for(data.state_db(), actor.name, actor.email)
