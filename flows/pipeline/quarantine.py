"""Why a file was quarantined, and what the user can do about it: one enum, one remedy each.

Every raw.quarantine row trapflow writes takes a :class:`QuarantineReason`. The detectors'
library names its rejections with the same codes (``models_ml.ImageRejected.REASONS``,
``models_ml.video.VideoError.REASONS``; it cannot import ``flows``) and its messages carry the
specifics; a test checks that every code there and in ``flows/`` is a member here.
Results imported from another tool keep that tool's own failure text as their reason
(:func:`flows.store.rows.imported_failure_row`).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["PROCESSED", "SKIPPED", "QuarantineReason", "reason_of"]

#: raw.quarantine.action: the file was not used at all.
SKIPPED = "skipped"
#: raw.quarantine.action: the file was used, with the problem recorded.
PROCESSED = "processed"


class QuarantineReason(StrEnum):
    """A short code for raw.quarantine.reason; ``remedy`` says what to do about it."""

    # reading the file
    UNREADABLE = "unreadable"
    EMPTY_FILE = "empty_file"
    OUTSIDE_SOURCE = "outside_source"
    # photos (models_ml/_imageops.py)
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    DECOMPRESSION_BOMB = "decompression_bomb"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    # processed, with a warning
    EXIF_UNREADABLE = "exif_unreadable"
    EXIF_INVALID = "exif_invalid"
    WRONG_EXTENSION = "wrong_extension"
    # clips (models_ml/video.py)
    CORRUPT_VIDEO = "corrupt_video"
    UNDECODABLE_VIDEO = "undecodable_video"
    UNSUPPORTED_VIDEO = "unsupported_video"
    NO_VIDEO_STREAM = "no_video_stream"
    EMPTY_VIDEO = "empty_video"

    @property
    def remedy(self) -> str:
        """What the user can do about it (one clause, no full stop)."""
        return _REMEDIES[self]

    def message(self, problem: str) -> str:
        """``problem``, then what to do: the text of raw.quarantine.error."""
        return f"{problem}; {self.remedy}"


_R = QuarantineReason
_REMEDIES: dict[QuarantineReason, str] = {
    _R.UNREADABLE: "check permissions and the storage, it will be tried again on the next run",
    _R.EMPTY_FILE: "copy it again from the card",
    _R.OUTSIDE_SOURCE: (
        "it was not read; copy the file into the source folder if it belongs to this survey"
    ),
    _R.NOT_AN_IMAGE: "check that the file is a photo or a clip from the camera",
    _R.UNSUPPORTED_FORMAT: "convert it to JPEG or PNG",
    _R.DECOMPRESSION_BOMB: "if this is a genuine photo, raise max_pixels; otherwise skip the file",
    _R.TRUNCATED: "the copy is incomplete, copy it from the card again",
    _R.CORRUPT: "the file is damaged, copy it from the card again",
    _R.EXIF_UNREADABLE: "check the camera's clock and settings",
    _R.EXIF_INVALID: "check the camera's clock and settings",
    _R.WRONG_EXTENSION: "rename it so other tools read it too",
    _R.CORRUPT_VIDEO: "the copy from the card may be truncated, copy it again",
    _R.UNDECODABLE_VIDEO: "convert it to H.264 MP4 (e.g. with ffmpeg)",
    _R.UNSUPPORTED_VIDEO: "convert it to H.264 MP4 (e.g. with ffmpeg)",
    _R.NO_VIDEO_STREAM: "remove it from the card (audio only or not a clip)",
    _R.EMPTY_VIDEO: "copy it again from the card, or convert it to H.264 MP4",
}


def reason_of(exc: BaseException, default: QuarantineReason) -> QuarantineReason:
    """The reason a library exception carries (``exc.reason``), else ``default``."""
    code = getattr(exc, "reason", None)
    try:
        return QuarantineReason(code) if code else default
    except ValueError:
        return default
