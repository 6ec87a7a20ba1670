"""Secrets never reach a log: every configured URL, its token-like parts, the credentials the
environment holds (:data:`SECRET_ENV`) and anything shaped like credentials are redacted from
every log record of the process (Apprise's and Prefect's included), through a log-record
factory. The one owner of redaction: the listener, the lake, the edge box and the alerts all
call :func:`redact` (it needs nothing but the standard library, so the edge install has it)."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

#: Environment variables whose values are credentials (of the bucket, the catalog, the listen
#: webhook): redacted wherever they appear, whether or not anything registered them.
SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "FSSPEC_S3_SECRET", "MINIO_ROOT_PASSWORD",
    "PGPASSWORD", "TRAPFLOW_LISTEN_TOKEN",
)  # fmt: skip

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.RLock()
_FACTORY_INSTALLED = False
#: A URL's user info (``user:password@``, or a bare token before the ``@``).
_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@]+@")
#: libpq's conninfo (``host=... password='x y'``), as a DuckLake catalog is given.
_CONNINFO_PASSWORD = re.compile(r"(?i)\b(password\s*=\s*)('[^']*'|[^\s'\"]+)")
_TOKEN_PARAMS = re.compile(
    r"(?i)\b(token|apikey|api_key|key|secret|password|pass|pwd|webhook|access_token)=[^&\s'\"]+"
)
_HOSTNAME = re.compile(r"^(localhost|[0-9.]+|\[[0-9a-fA-F:]+\]|([a-zA-Z0-9-]+\.)+[a-zA-Z]{2,})$")
_HOST_PORT = re.compile(
    r"^(localhost|[0-9.]+|\[[0-9a-fA-F:]+\]|([a-zA-Z0-9-]+\.)+[a-zA-Z]{2,})(:[0-9]{1,5})?$"
)


def _secret_parts(url: str) -> set[str]:
    """The URL and every part of it that may be (or contain) a token or a password."""
    url = url.strip()
    parts = {url}
    try:
        split = urlsplit(url)
        query = parse_qsl(split.query)
    except ValueError:
        return parts
    if not _HOST_PORT.match(split.netloc):
        parts.add(split.netloc)  # credentials, or a token where the host would be (tgram://)
    pieces = re.split(r"[:@]", split.netloc) + split.path.split("/") + [v for _k, v in query]
    for piece in (unquote(p) for p in pieces):
        if len(piece) >= 6 and not _HOSTNAME.match(piece):
            parts.add(piece)
    return {p for p in parts if p}


def register_secrets(urls: Iterable[str]) -> None:
    """Remember URLs (and their token-like parts) so that no log record ever shows them."""
    install_log_redaction()
    with _SECRETS_LOCK:
        for url in urls:
            _SECRETS.update(_secret_parts(url))


def redact(text: str) -> str:
    """``text`` with every registered secret, credential and token parameter replaced."""
    if not text:
        return text
    with _SECRETS_LOCK:
        secrets = set(_SECRETS)
    secrets.update(v for v in (os.environ.get(name) for name in SECRET_ENV) if v and len(v) >= 4)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    text = _CREDENTIALS.sub(r"\1***@", text)
    text = _CONNINFO_PASSWORD.sub(r"\1***", text)
    return _TOKEN_PARAMS.sub(r"\1=***", text)


def redact_url(url: str) -> str:
    """A name for a URL that says which it is without a secret: ``json://127.0.0.1:8000/***``."""
    try:
        split = urlsplit(url.strip())
    except ValueError:
        return "***"
    host_port = split.netloc.rsplit("@", 1)[-1]
    shown = host_port if _HOST_PORT.match(host_port) else "***"
    user = "***@" if split.username or split.password else ""
    rest = "/***" if split.path.strip("/") or split.query else ""
    return f"{split.scheme}://{user}{shown}{rest}"


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is not ours to fix, but it is ours to redact
        message = str(record.msg)
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)


def install_log_redaction() -> None:
    """Redact secrets from every log record of this process, whichever logger makes it.

    A record factory (not a handler filter) so that handlers added later (Prefect's API log
    handler, pytest's caplog) only ever see the redacted text.
    """
    global _FACTORY_INSTALLED
    with _SECRETS_LOCK:
        if _FACTORY_INSTALLED:
            return
        _FACTORY_INSTALLED = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub(record)
        return record

    logging.setLogRecordFactory(factory)
