"""Sign-in and roles for the dashboard (docs/security.md, "Access").

``streamlit_app.py`` calls ``require_sign_in()`` before navigation: until it returns, nothing
of the warehouse is read or shown. Pages ask ``is_ranger()`` before they offer unblurred
people or exact locations of sensitive species; a viewer never gets either. The setting
``dashboard_auth`` picks how people sign in:

- ``none``: no sign-in, only while the server listens on loopback; the local user is a ranger.
- ``password``: a form checked against the users file (``trapflow dashboard users``).
- ``oidc``: Streamlit's ``st.login`` ([auth] in .streamlit/secrets.toml, needs Authlib);
  ``dashboard_ranger_emails`` are rangers, everyone else a viewer.
- ``proxy``: a reverse proxy with a password file signs people in and passes
  ``X-Forwarded-User`` (and ``X-Trapflow-Role``), trusted only when enabled.

The hashes, roles and checks are plain functions in ``flows/access/signin.py``.
"""

from __future__ import annotations

import time
from typing import NoReturn

import streamlit as st

from flows.access import signin as _access
from flows.settings import Settings, load_settings

IDENTITY_KEY = "trapflow_identity"
_HASH_KEY = "trapflow_identity_hash"  # password mode: a changed password signs sessions out
_FAILURES_KEY = "trapflow_signin_failures"
#: failed password sign-ins per user name, for the whole dashboard process
THROTTLE = _access.Throttle()


def require_sign_in() -> _access.Identity:
    """The signed-in identity; otherwise shows the sign-in (or what to set up) and stops."""
    settings = load_settings()
    mode = settings.dashboard_auth
    if mode == "password":
        identity = _password(settings)
    elif mode == "oidc":
        identity = _oidc(settings)
    elif mode == "proxy":
        identity = _proxy(settings)
    else:
        identity = _local(settings)
    st.session_state[IDENTITY_KEY] = identity
    _sidebar(identity)
    return identity


def identity() -> _access.Identity | None:
    found = st.session_state.get(IDENTITY_KEY)
    return found if isinstance(found, _access.Identity) else None


def role() -> _access.Role:
    """The signed-in user's role; ``viewer`` when nobody is (the safe default)."""
    found = identity()
    return found.role if found else "viewer"


def is_ranger() -> bool:
    return role() == "ranger"


def _stop(message: str) -> NoReturn:
    st.error(message, icon="🔒")
    st.stop()


def _server_address() -> str | None:
    address = st.get_option("server.address")
    return str(address) if address else None


def _local(settings: Settings) -> _access.Identity:
    problem = _access.exposure_problem(settings, _server_address())
    if problem:
        _stop(f"The dashboard will not show anything: {problem}.")
    return _access.Identity("local", "ranger", "none")


def _password(settings: Settings) -> _access.Identity:
    path = _access.users_path(settings)
    try:
        users = _access.load_users(path)
    except _access.AccessError as exc:
        _stop(f"The users file cannot be read: {exc}.")
    if not users:
        _stop(
            f"Password sign-in is on but {path} has no users. On the dashboard's machine run "
            "`trapflow dashboard users add NAME --role ranger`, then reload this page."
        )
    current = identity()
    if current is not None and current.via == "password":
        user = users.get(current.name.lower())
        if (
            user
            and user.role == current.role
            and user.password_hash == st.session_state.get(_HASH_KEY)
        ):
            return current
        # removed, role or password changed since: sign in again
        st.session_state.pop(IDENTITY_KEY, None)
    st.title("trapflow")
    with st.form("trapflow_sign_in", clear_on_submit=True):
        st.subheader("Sign in")
        name = st.text_input("User name", key="sign_in_name")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        user = _access.authenticate(users, name, password)
        if user is None:
            failures = int(st.session_state.get(_FAILURES_KEY, 0)) + 1
            st.session_state[_FAILURES_KEY] = failures
            by_session = min(THROTTLE.base_s * 2.0 ** (failures - 1), THROTTLE.max_s)
            time.sleep(max(THROTTLE.fail(name.strip() or "?"), by_session))
            _stop(
                "Wrong user name or password. Each failed attempt makes the next answer slower; "
                "ask whoever runs the dashboard to reset your password "
                "(`trapflow dashboard users add NAME`)."
            )
        THROTTLE.succeed(user.name)
        st.session_state[_FAILURES_KEY] = 0
        st.session_state[IDENTITY_KEY] = _access.Identity(user.name, user.role, "password")
        st.session_state[_HASH_KEY] = user.password_hash
        st.rerun()
    st.stop()


def _sign_out() -> None:
    for key in (IDENTITY_KEY, _HASH_KEY):
        st.session_state.pop(key, None)


def _oidc(settings: Settings) -> _access.Identity:
    found = _access.oidc_identity(st.user.to_dict(), settings.dashboard_ranger_emails)
    if found is not None:
        return found
    problem = _access.oidc_problem()
    if problem:
        _stop(f"Sign-in is not set up: {problem}.")
    st.title("trapflow")
    st.subheader("Sign in")
    for provider in _oidc_providers():
        label = f"Sign in with {provider}" if provider else "Sign in"
        st.button(label, on_click=st.login, args=(provider,), key=f"sign_in_{provider or ''}")
    st.stop()


def _oidc_providers() -> list[str | None]:
    """Named providers ([auth.google], ...) in secrets.toml; [None] for a single unnamed one."""
    try:
        section = st.secrets["auth"]
    except (KeyError, FileNotFoundError):
        return [None]
    named: list[str | None] = [
        str(k) for k, v in section.items() if hasattr(v, "get") and v.get("client_id")
    ]
    return [None, *named] if "client_id" in section or not named else named


def _proxy(settings: Settings) -> _access.Identity:
    problem = _access.exposure_problem(settings, _server_address())
    if problem:
        _stop(f"The dashboard will not show anything: {problem}.")
    try:
        found = _access.proxy_identity(
            _request_headers(), settings.dashboard_ranger_emails,
            trusted=settings.dashboard_trust_proxy_header,
        )  # fmt: skip
    except _access.AccessError as exc:
        _stop(f"Refused: {exc}.")
    if found is None:
        _stop(
            f"No {_access.USER_HEADER} header came with this request: open the dashboard "
            "through the reverse proxy that signs people in (docs/security.md)."
        )
    return found


def _request_headers() -> list[tuple[str, str]]:
    """The header pairs of this session's request (repeated headers kept)."""
    headers = st.context.headers
    return [(key, value) for key in headers for value in headers.get_all(key)]


def _sidebar(who: _access.Identity) -> None:
    with st.sidebar:
        if who.via == "none":
            st.caption("Local use, no sign-in (ranger view).")
            return
        st.caption(f"Signed in as **{who.name}** ({who.role}).")
        if who.via == "password":
            st.button("Sign out", on_click=_sign_out, key="sign_out")
        elif who.via == "oidc":
            st.button("Sign out", on_click=st.logout, key="sign_out")
