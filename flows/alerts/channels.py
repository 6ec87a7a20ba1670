"""Alert channels: named lists of Apprise URLs (settings or a Prefect Secret block), the URLs
of a rule, and the trust level of each channel (rangers get exact places and unblurred
thumbnails, everyone else does not)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flows.alerts.redaction import redact_url, register_secrets
from flows.errors import UserError
from flows.settings import AlertRule, Settings
from flows.store import ids

DEFAULT_CHANNEL = "default"


@dataclass(frozen=True)
class Target:
    channel: str
    url: str = field(repr=False)
    key: str  # sha256 of the URL, 16 hex: what the warehouse stores
    name: str  # redacted, for people


class AlertConfigError(UserError, ValueError):
    """An alert channel cannot be resolved; the message says what to set."""


def _split_urls(value: str) -> list[str]:
    return [u.strip() for u in re.split(r"[,\s]+", value) if u.strip()]


def _resolve_secret(value: str) -> str:
    if not value.startswith("prefect-secret:"):
        return value
    name = value.removeprefix("prefect-secret:").strip()
    from prefect.blocks.system import Secret

    try:
        secret: Any = Secret.load(name)
    except ValueError as exc:
        raise AlertConfigError(
            f"Prefect Secret block {name!r} not found: create it (prefect block create secret) "
            "or put the URLs in TRAPFLOW_ALERT_URLS"
        ) from exc
    return str(secret.get())


def channel_urls(settings: Settings) -> dict[str, list[str]]:
    """Channel name -> Apprise URLs (``default`` is TRAPFLOW_ALERT_URLS)."""
    raw: dict[str, str] = {}
    if settings.alert_urls is not None:
        raw[DEFAULT_CHANNEL] = settings.alert_urls.get_secret_value()
    for name, value in settings.alert_channels.items():
        raw[name.lower()] = value.get_secret_value()
    channels = {name: _split_urls(_resolve_secret(value)) for name, value in raw.items()}
    register_secrets(u for urls in channels.values() for u in urls)
    return {name: urls for name, urls in channels.items() if urls}


def rule_channels(rule: AlertRule) -> list[str]:
    return [c.lower() for c in rule.channels] or [DEFAULT_CHANNEL]


def targets_for(channels: Sequence[str], urls: dict[str, list[str]]) -> list[Target]:
    """The distinct URLs of the named channels."""
    seen: dict[str, Target] = {}
    for channel in channels:
        for url in urls.get(channel, []):
            key = ids.channel_key(url)
            seen.setdefault(key, Target(channel, url, key, redact_url(url)))
    return list(seen.values())


RANGER = "ranger"  # exact coordinates, unblurred thumbnails
PUBLIC = "public"  # everyone else: sensitive locations generalised, people blurred


def channel_trust(settings: Settings, channel: str) -> str:
    """``ranger`` for the channels named in ``settings.ranger_channels``, else ``public``."""
    return RANGER if channel.lower() in settings.ranger_channels else PUBLIC


def trust_groups(
    settings: Settings, rule: AlertRule, urls: dict[str, list[str]]
) -> list[tuple[str, list[str]]]:
    """The rule's channels that have a URL, by trust level, rangers first: one outbox row
    (one message text, one thumbnail) per group."""
    groups: dict[str, list[str]] = {RANGER: [], PUBLIC: []}
    for channel in rule_channels(rule):
        if urls.get(channel) and channel not in groups[channel_trust(settings, channel)]:
            groups[channel_trust(settings, channel)].append(channel)
    return [(trust, channels) for trust, channels in groups.items() if channels]


def row_id(base: str, trust: str, groups: Sequence[tuple[str, list[str]]]) -> str:
    """The first group's row keeps ``base`` (a rule with one trust level: ids as before)."""
    return base if not groups or trust == groups[0][0] else ids.trust_row_id(base, trust)


def with_timeouts(url: str, timeout_s: float) -> str:
    """The URL with Apprise's connect/read timeouts (``cto``/``rto``) unless it sets its own."""
    split = urlsplit(url)
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    query.setdefault("cto", f"{timeout_s:g}")
    query.setdefault("rto", f"{timeout_s:g}")
    return urlunsplit(split._replace(query=urlencode(query)))
