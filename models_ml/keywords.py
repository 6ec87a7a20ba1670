"""Species a person already tagged in a photo's XMP keywords (camtrapR's ``IDfrom = "metadata"``).

digiKam, Lightroom, ACDSee and Timelapse write hierarchical keywords into the XMP packet of a
JPEG: ``lr:hierarchicalSubject`` and ``mediapro:CatalogSets`` as ``Species|Leopard Cat``,
digiKam's ``TagsList`` and Windows' ``LastKeywordXMP`` as ``Species/Leopard Cat``. camtrapR
reads the same tags (``metadataSpeciesTag = "Species"``). :func:`species_keywords` returns the
names below the given parent tag; the flat ``dc:subject`` list is not used, because it cannot
say which keyword is a species.

Pure library: no Prefect, no Streamlit; the XMP packet is found in the bytes, never decoded
as an image.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

__all__ = ["hierarchical_keywords", "species_keywords"]

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
#: XMP properties holding hierarchical keywords, and the separator each one uses.
_HIERARCHICAL = {
    "{http://ns.adobe.com/lightroom/1.0/}hierarchicalSubject": "|",
    "{http://ns.iview-multimedia.com/mediapro/1.0/}CatalogSets": "|",
    "{http://www.digikam.org/ns/1.0/}TagsList": "/",
    "{http://ns.microsoft.com/photo/1.0/}LastKeywordXMP": "/",
}
#: An XMP packet is small; a longer span between the markers is not one.
_MAX_PACKET = 1 << 20


def _packet(data: bytes) -> bytes | None:
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        return None
    end = data.find(b"</x:xmpmeta>", start)
    if end < 0 or end - start > _MAX_PACKET:
        return None
    return data[start : end + len(b"</x:xmpmeta>")]


def hierarchical_keywords(data: bytes) -> list[tuple[str, ...]]:
    """Every hierarchical keyword in the file's XMP packet, as its path of tags
    (``("Species", "Leopard Cat")``); none when there is no packet or it is not XML."""
    packet = _packet(data)
    if packet is None:
        return []
    try:
        root = fromstring(packet)
    except (ET.ParseError, DefusedXmlException):
        return []
    found: list[tuple[str, ...]] = []
    for prop, sep in _HIERARCHICAL.items():
        for element in root.iter(prop):
            for item in element.iter(f"{_RDF}li"):
                parts = tuple(p.strip() for p in (item.text or "").split(sep) if p.strip())
                if parts and parts not in found:
                    found.append(parts)
    return found


def species_keywords(data: bytes, parent: str) -> list[str]:
    """The species tagged below ``parent`` (e.g. ``Species`` or ``Species|``): for
    ``Species|Leopard Cat`` that is ``Leopard Cat``; for a deeper path such as
    ``Species|Felidae|Leopard Cat`` the last, most specific name. Case of the parent is
    ignored; an empty ``parent`` reads nothing."""
    tag = parent.strip().rstrip("|/").strip().casefold()
    if not tag:
        return []
    names: list[str] = []
    for path in hierarchical_keywords(data):
        if len(path) >= 2 and path[0].casefold() == tag and path[-1] not in names:
            names.append(path[-1])
    return names
