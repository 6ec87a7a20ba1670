"""Alert texts: titles and Markdown bodies, with everything from EXIF, file and folder names
made inert, and the place shown exactly to rangers and generalised for everyone else at a
sensitive site."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flows.access.privacy import generalise
from flows.alerts.channels import PUBLIC, RANGER
from flows.alerts.rules import Hit, Seen, Silence
from flows.settings import AlertRule, Settings

TEXT_LIMIT = 120

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def sanitize(value: object, limit: int = TEXT_LIMIT) -> str:
    """Text from EXIF, file or folder names made inert for Markdown, HTML, Slack and Telegram.

    Control characters and newlines go, the length is capped, Markdown punctuation is
    backslash-escaped and ``& < >`` become entities (which also defuses Slack's ``<url|text>``).
    ``://`` is broken up so that a name cannot become a link.
    """
    text = unicodedata.normalize("NFKC", str(value))
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = html.escape(text, quote=False)
    return text.replace("://", ":\u2060//")


def dashboard_link(settings: Settings, media_id: str) -> str:
    return f"{settings.dashboard_url.rstrip('/')}/?media_id={media_id}"


_TITLE_DROP = re.compile(r"[<>&\[\](){}*_`|~#\\!]")


def plain(value: object, limit: int = 40) -> str:
    """Text for a title (an e-mail subject, a push headline): markup characters dropped."""
    text = _TITLE_DROP.sub("", unicodedata.normalize("NFKC", str(value)))
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    text = text.replace("://", ":/ /")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _what(rule: AlertRule) -> str:
    if rule.kind == "human":
        return "Person"
    labels = sorted(k.lower() for k in rule.labels)
    return plain(", ".join(labels)) if labels else plain(rule.name)


def _seen_text(seen: Sequence[Seen]) -> str:
    best: dict[tuple[str, str], float] = {}
    for s in seen:
        key = (s.label, s.model)
        best[key] = max(best.get(key, 0.0), s.confidence)
    parts = sorted(best.items(), key=lambda kv: -kv[1])[:5]
    return ", ".join(f"{sanitize(label)} {conf:.2f} ({sanitize(model)})" for (label, model), conf
                     in parts)  # fmt: skip


def location_text(settings: Settings, hits: Sequence[Hit], trust: str) -> str:
    """Where the images were taken, for a message to a channel of ``trust``.

    Rangers get the exact coordinates. Every other channel gets the centre of the
    ``sensitive_grid_km`` cell when any of ``hits`` shows a sensitive taxon or was taken at a
    site that ever recorded one (a person near the rhinos tells where the rhinos are). The
    text never says why a location is approximate.
    """
    coarse = trust != RANGER and any(h.sensitive for h in hits)
    shown: list[str] = []
    for h in hits:
        if h.place is None:
            continue
        lat, lon, source = h.place
        text = f"{lat:.6f}, {lon:.6f} ({source})"
        if coarse:
            glat, glon, radius_m = generalise(lat, lon, settings.sensitive_grid_km)
            if radius_m is not None:
                text = (
                    f"{glat:.5f}, {glon:.5f} (approximate: {settings.sensitive_grid_km:g} km "
                    f"grid cell, ±{radius_m:,} m)"
                )
        if text not in shown:
            shown.append(text)
    if not shown:
        return "not recorded (no deployment coordinates, no GPS in the image)"
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return "; ".join(shown[:5]) + more


def alert_message(settings: Settings, hit: Hit, trust: str = PUBLIC) -> tuple[str, str]:
    site, camera = plain(hit.site_id), plain(hit.camera_id)
    title = f"{_what(hit.rule)} at site {site}, camera {camera}"
    body = "\n".join(
        [
            f"**Rule:** {sanitize(hit.rule.name)}  ",
            f"**Site:** {sanitize(hit.site_id)}  ",
            f"**Camera:** {sanitize(hit.camera_id)}  ",
            f"**Location:** {location_text(settings, [hit], trust)}  ",
            f"**Local time:** {hit.captured_at:%Y-%m-%d %H:%M:%S} (camera clock)  ",
            f"**Seen:** {_seen_text(hit.seen)}  ",
            f"**File:** {sanitize(hit.file_path)}  ",
            f"[Open in the dashboard]({dashboard_link(settings, hit.media_id)})",
        ]
    )
    return title, body


def summary_message(
    settings: Settings,
    anchor: tuple[datetime, str, str | None],
    hits: Sequence[Hit],
    trust: str = PUBLIC,
) -> tuple[str, str]:
    first, last = hits[0], hits[-1]
    cameras = sorted({h.camera_id for h in hits})
    title = (
        f"{_what(first.rule)} at site {plain(first.site_id)}: "
        f"{len(hits)} more image{'s' if len(hits) != 1 else ''}"
    )
    all_seen = [s for h in hits for s in h.seen]
    body = "\n".join(
        [
            f"**Rule:** {sanitize(first.rule.name)} (follow-up to the alert of "
            f"{anchor[0]:%Y-%m-%d %H:%M:%S})  ",
            f"**Site:** {sanitize(first.site_id)}  ",
            f"**Cameras:** {', '.join(sanitize(c) for c in cameras[:10])}  ",
            f"**Location:** {location_text(settings, hits, trust)}  ",
            f"**Local time:** {first.captured_at:%Y-%m-%d %H:%M:%S} to "
            f"{last.captured_at:%Y-%m-%d %H:%M:%S} (camera clock)  ",
            f"**Images:** {len(hits)}, best {max(h.best for h in hits):.2f}  ",
            f"**Seen:** {_seen_text(all_seen)}  ",
            f"[Last image in the dashboard]({dashboard_link(settings, last.media_id)})",
        ]
    )
    return title, body


def anomaly_message(
    rule: AlertRule, day: Any, label: str, site_id: str, z: float
) -> tuple[str, str]:
    direction = "drop" if z < 0 else "rise"
    title = f"Population {direction}: {plain(label)} at site {plain(site_id)}"
    body = "\n".join(
        [
            f"**Rule:** {sanitize(rule.name)}  ",
            f"**Site:** {sanitize(site_id)}  ",
            f"**Label:** {sanitize(label)}  ",
            f"**Day:** {day}  ",
            f"**z-score:** {z:+.2f} (threshold ±{rule.z_threshold:g}, from "
            "marts.fct\\_population\\_variance)",
        ]
    )
    return title, body


def silent_message(silence: Silence) -> tuple[str, str]:
    title = f"Camera {plain(silence.camera_id)} at site {plain(silence.site_id)} is silent"
    body = "\n".join(
        [
            f"**Rule:** {sanitize(silence.rule.name)}  ",
            f"**Site:** {sanitize(silence.site_id)}  ",
            f"**Camera:** {sanitize(silence.camera_id)}  ",
            f"**Last photo:** {silence.last_captured_at:%Y-%m-%d %H:%M:%S} (camera clock)  ",
            f"**Usual gap:** {silence.usual_gap_hours:.1f} h; silent since "
            f"{silence.silent_after:%Y-%m-%d %H:%M} (marts.live\\_camera\\_gaps)  ",
            "Check its batteries, card and field of view.",
        ]
    )
    return title, body


def digest_message(
    channel: str,
    day: Any,
    species: dict[str, int],
    new_species: Sequence[str],
    people: dict[str, int],
    silent: Sequence[tuple[str, str, datetime | None]],
) -> tuple[str, str]:
    """One channel's day: photos per species, species new to the warehouse, photos of people
    per site, cameras gone silent."""
    photos = sum(species.values()) + sum(people.values())
    title = f"trapflow daily digest {day}: {photos} photo{'s' if photos != 1 else ''}"
    if silent:
        title += f", {len(silent)} silent camera{'s' if len(silent) != 1 else ''}"

    def counts(values: dict[str, int]) -> str:
        ordered = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
        return ", ".join(f"{sanitize(k)} {n}" for k, n in ordered) or "none"

    lines = [
        f"**Day:** {day} (UTC), channel {sanitize(channel)}  ",
        f"**Photos per species:** {counts(species)}  ",
        f"**New species:** {', '.join(sanitize(s) for s in new_species) or 'none'}  ",
        f"**People (photos per site):** {counts(people)}  ",
    ]
    shown = [
        f"{sanitize(site)}/{sanitize(camera)}"
        + (f" (last photo {last:%Y-%m-%d %H:%M})" if last else "")
        for site, camera, last in silent[:20]
    ]
    more = f" and {len(silent) - 20} more" if len(silent) > 20 else ""
    lines.append(f"**Silent cameras:** {', '.join(shown) + more or 'none'}")
    return title, "\n".join(lines)
