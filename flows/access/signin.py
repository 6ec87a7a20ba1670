"""Who may open the dashboard, and as which role (docs/security.md, "Access").

Plain functions, no Streamlit: the password file and its salted hashes, the role an OIDC
e-mail or a reverse proxy's user gets, the slow-down after failed sign-ins, and the check
that the dashboard is never exposed beyond this machine without sign-in. ``trapflow
dashboard users`` and ``dashboard/auth.py`` both use them.

Roles: a **viewer** sees sensitive species' locations generalised and people blurred, always;
a **ranger** may show exact locations and unblurred people (evidence).

The users file has one user per line, ``name:role:scrypt$N$r$p$salt$hash`` (salt and hash in
base64); ``#`` starts a comment. The password itself is never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from flows.settings import Settings

Role = Literal["viewer", "ranger"]
ROLES: tuple[Role, ...] = ("viewer", "ranger")
AUTH_MODES = ("none", "password", "oidc", "proxy")
MIN_PASSWORD_LENGTH = 8
USER_HEADER = "X-Forwarded-User"
ROLE_HEADER = "X-Trapflow-Role"

# scrypt cost: 2**15 x 8 x 1 = 32 MiB and ~0.1 s per hash (OWASP's minimum is 2**17 with
# r=8, p=1 at 128 MiB; this is the lighter end for a laptop). Stored per hash, so raising
# it later keeps old hashes valid.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 256 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
_HEADER = (
    "# trapflow dashboard users, one per line: name:role:scrypt$N$r$p$salt$hash\n"
    "# manage with `trapflow dashboard users add|remove|list`; passwords are never stored\n"
)


class AccessError(ValueError):
    """A users file, user name, role or password that cannot be used; says what to do."""


@dataclass(frozen=True)
class User:
    """One line of the users file."""

    name: str
    role: Role
    password_hash: str


@dataclass(frozen=True)
class Identity:
    """Who is looking at the dashboard, and how they proved it."""

    name: str
    role: Role
    via: Literal["none", "password", "oidc", "proxy"]

    @property
    def is_ranger(self) -> bool:
        return self.role == "ranger"


# ---------------------------------------------------------------- hashing


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of the password: ``scrypt$N$r$p$salt$hash``."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, encoded: str) -> bool:
    """Whether the password matches the hash (constant-time compare; a malformed hash or an
    absurd cost parameter is simply no match)."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        n_i, r_i, p_i = int(n), int(r), int(p)
        if scheme != "scrypt" or not (2**10 <= n_i <= 2**20 and 1 <= r_i <= 32 and p_i <= 4):
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), n_i, r_i, p_i)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# A hash to check against when the user does not exist, so a wrong name takes as long as a
# wrong password (no user enumeration by timing).
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASH


# ---------------------------------------------------------------- the users file


def users_path(settings: Settings) -> Path:
    """``dashboard_users_file``, else ``<home>/dashboard_users``."""
    path = settings.dashboard_users_file or settings.home / "dashboard_users"
    return path.expanduser().absolute()


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise AccessError(
            f"user name {name!r} is not allowed: use 1-64 letters, digits and . _ @ + - "
            "(an e-mail address works)"
        )
    return name


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise AccessError(f"role {role!r} is not one of {', '.join(ROLES)}")


def load_users(path: Path) -> dict[str, User]:
    """The users in the file by lower-cased name; ``{}`` when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    users: dict[str, User] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise AccessError(
                f"{path}:{number}: expected 'name:role:hash'; fix or remove the line "
                "(`trapflow dashboard users add NAME --role ROLE` rewrites it)"
            )
        name, role, password_hash = parts
        try:
            users[check_name(name).lower()] = User(name, check_role(role), password_hash)
        except AccessError as exc:
            raise AccessError(f"{path}:{number}: {exc}") from None
    return users


def save_users(path: Path, users: Iterable[User]) -> None:
    """Write the users file atomically, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [_HEADER, *[f"{u.name}:{u.role}:{u.password_hash}\n" for u in users]]
    fd, tmp = tempfile.mkstemp(prefix=".users-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_user(path: Path, name: str, role: str, password: str) -> bool:
    """Add the user, or replace their role and password; True when the user is new."""
    check_name(name)
    checked = check_role(role)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccessError(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    users = load_users(path)
    is_new = name.lower() not in users
    users[name.lower()] = User(name, checked, hash_password(password))
    save_users(path, users.values())
    return is_new


def remove_user(path: Path, name: str) -> bool:
    """Remove the user; False when there was none by that name."""
    users = load_users(path)
    if users.pop(name.lower(), None) is None:
        return False
    save_users(path, users.values())
    return True


def authenticate(users: Mapping[str, User], name: str, password: str) -> User | None:
    """The user when the name and password match, else None (same work either way)."""
    user = users.get(name.strip().lower())
    ok = verify_password(password, user.password_hash if user else _dummy_hash())
    return user if ok and user is not None else None


# ---------------------------------------------------------------- slowing down guessing


class Throttle:
    """Failed sign-ins per key (a user name): the n-th failure within ``window_s`` costs
    ``base_s * 2**(n-1)`` seconds (at most ``max_s``) before the answer is shown. One
    instance per dashboard process, so a new browser session does not reset it."""

    def __init__(
        self,
        base_s: float = 1.0,
        max_s: float = 30.0,
        window_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_s, self.max_s, self.window_s, self.clock = base_s, max_s, window_s, clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def fail(self, key: str) -> float:
        """Record a failure; returns the delay to impose now."""
        now = self.clock()
        with self._lock:
            if len(self._failures) > 10_000:  # a flood of made-up names: forget the oldest
                self._failures.pop(next(iter(self._failures)))
            recent = [t for t in self._failures.get(key.lower(), []) if now - t < self.window_s]
            recent.append(now)
            self._failures[key.lower()] = recent
        return min(self.base_s * 2.0 ** (len(recent) - 1), self.max_s)

    def succeed(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key.lower(), None)


# ---------------------------------------------------------------- roles from OIDC and a proxy


def _listed(name: str, entries: Iterable[str]) -> bool:
    """Whether a user name or e-mail is in the list (case-insensitive; '@domain' entries
    match every address of that domain)."""
    name = name.strip().lower()
    for entry in (e.strip().lower() for e in entries if e.strip()):
        if name == entry or (entry.startswith("@") and name.endswith(entry)):
            return True
    return False


def role_for(name: str | None, ranger_names: Iterable[str]) -> Role:
    """ranger when the e-mail or user name is in ``dashboard_ranger_emails``, else viewer."""
    return "ranger" if name and _listed(name, ranger_names) else "viewer"


def oidc_identity(claims: Mapping[str, object], ranger_names: Iterable[str]) -> Identity | None:
    """The identity in ``st.user``'s claims; None when not signed in. An e-mail the provider
    says is unverified never gets the ranger role."""
    if claims.get("is_logged_in") is not True:
        return None
    email = str(claims.get("email") or "")
    name = email or str(claims.get("name") or claims.get("sub") or "signed-in user")
    role = role_for(email, ranger_names) if claims.get("email_verified") is not False else "viewer"
    return Identity(name, role, "oidc")


def proxy_identity(
    headers: Iterable[tuple[str, str]], ranger_names: Iterable[str], *, trusted: bool
) -> Identity | None:
    """The identity a reverse proxy passed in ``X-Forwarded-User`` (and optionally
    ``X-Trapflow-Role``), from the request's header pairs; None when the header is missing or
    trusting it is not enabled. The proxy must set both headers itself, replacing whatever the
    browser sent: a header that comes twice raises AccessError."""
    if not trusted:
        return None
    wanted = {USER_HEADER.lower(): "", ROLE_HEADER.lower(): ""}
    seen: set[str] = set()
    for key, value in headers:
        key = key.lower()
        if key in wanted:
            if key in seen:
                raise AccessError(
                    f"the request carries {key} twice: the proxy must replace {USER_HEADER} "
                    f"and {ROLE_HEADER}, not append to them (docs/security.md)"
                )
            seen.add(key)
            wanted[key] = value.strip()
    name, stated = wanted[USER_HEADER.lower()], wanted[ROLE_HEADER.lower()].lower()
    if not name:
        return None
    if stated:
        try:
            return Identity(name, check_role(stated), "proxy")
        except AccessError:
            return Identity(name, "viewer", "proxy")  # a garbled role is never a ranger
    return Identity(name, role_for(name, ranger_names), "proxy")


# ---------------------------------------------------------------- exposure


def is_loopback(host: str | None) -> bool:
    """Whether a bind address only serves this machine (a loopback address, or a unix socket:
    ``unix://PATH``). None or '' (Streamlit's default) binds every interface, so it is not."""
    if not host:
        return False
    if host.startswith("unix://"):
        return True
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(settings: Settings, host: str | None) -> str | None:
    """Why the dashboard must not start on ``host`` with these settings (None: it may)."""
    mode = settings.dashboard_auth
    if mode == "none" and not is_loopback(host):
        return (
            f"the dashboard would listen on {host or 'every interface'} without sign-in, so "
            "anyone on the network could see unblurred people and exact locations. Keep it on "
            "127.0.0.1, or turn sign-in on: `trapflow dashboard users add NAME --role ranger` "
            "and TRAPFLOW_DASHBOARD_AUTH=password (or oidc / proxy, see docs/security.md)"
        )
    if mode == "proxy" and not settings.dashboard_trust_proxy_header:
        return (
            "dashboard_auth = 'proxy' trusts the proxy's X-Forwarded-User header, which is "
            "off: set TRAPFLOW_DASHBOARD_TRUST_PROXY_HEADER=true once only the proxy can reach "
            "the dashboard (docs/security.md)"
        )
    if mode == "proxy" and not is_loopback(host):
        return (
            f"in proxy mode the dashboard must listen on 127.0.0.1, not {host or '*'}: anyone "
            "reaching it directly could send a forged X-Forwarded-User. Run the proxy on this "
            "machine and keep --host 127.0.0.1 (docs/security.md)"
        )
    if mode == "oidc":
        return oidc_problem()
    if mode == "password":
        path = users_path(settings)
        if not load_users(path):
            return (
                f"password sign-in is on but {path} has no users: add one with "
                "`trapflow dashboard users add NAME --role ranger`"
            )
    return None


def oidc_problem(cwd: Path | None = None) -> str | None:
    """Why Streamlit's OIDC sign-in cannot work here: Authlib missing, or no [auth] section in
    ``.streamlit/secrets.toml`` (the working folder's or ~/.streamlit's)."""
    import importlib.util
    import tomllib

    if importlib.util.find_spec("authlib") is None:
        return (
            "OIDC sign-in needs Authlib, which is not installed: `.venv/bin/pip install "
            "'Authlib>=1.3.2'` (or use dashboard_auth = 'password')"
        )
    places = [(cwd or Path.cwd()) / ".streamlit" / "secrets.toml"]
    places.append(Path.home() / ".streamlit" / "secrets.toml")
    for place in places:
        try:
            if "auth" in tomllib.loads(place.read_text(encoding="utf-8")):
                return None
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return (
        "OIDC sign-in needs an [auth] section (redirect_uri, cookie_secret, client_id, "
        "client_secret, server_metadata_url) in .streamlit/secrets.toml: see docs/security.md"
    )
