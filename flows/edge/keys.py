"""What the edge writes at its target and the central import reads back, in one place: a
photo's key, the manifests' folder and their format. No imports beyond the standard library,
so both the edge install and the central ingest import it."""

from __future__ import annotations

#: Where manifests go at the target (``trapflow import edge-manifests`` reads this folder).
MANIFEST_PREFIX = "_manifests"
#: The ``format`` of a manifest's first line (its header); the other lines are photos.
MANIFEST_FORMAT = "trapflow-edge-manifest/1"
#: A manifest row's ``status``: the photo went up, or stayed on the card (a blank).
UPLOADED, KEPT_ON_CARD = "uploaded", "kept_on_card"


def remote_key(path: str, media_id: str) -> str:
    """A photo's key at the target: its card folder, then its media id and extension. The
    folder keeps site and camera as the central layout names them
    (``flows.pipeline.discovery.site_and_camera``); the id makes a repeated put land on the
    same object."""
    folder, _, name = path.rpartition("/")
    ext = name.rsplit(".", 1)[-1] if "." in name else "jpg"
    return f"{folder}/{media_id}.{ext}" if folder else f"{media_id}.{ext}"
