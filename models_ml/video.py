"""Video clips: container metadata and frames sampled at a rate, streamed with PyAV.

Pure functions over a path or a binary file object (PyAV reads it in small pieces, so a 2 GB
clip is never held in memory). Only the frames that are needed are decoded: when the next
wanted frame is far ahead the demuxer seeks to the keyframe before it, otherwise frames are
decoded in order and the ones in between dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import IO, Any

import av
import av.container
import av.error
from PIL import Image

from .media_types import VIDEO_EXTENSIONS as VIDEO_EXTENSIONS

#: Seek (to the keyframe before the next wanted frame) when it is this far ahead, in seconds.
SEEK_GAP_S = 3.0

#: Tags that may hold the recording time, most specific first.
TIME_TAGS = ("creation_time", "com.apple.quicktime.creationdate", "date", "datetimeoriginal")

Source = str | IO[bytes]


class VideoError(Exception):
    """A clip that cannot be used; ``reason`` is a short code for the quarantine."""

    REASONS = frozenset(
        {
            "corrupt_video",
            "undecodable_video",
            "unsupported_video",
            "no_video_stream",
            "empty_video",
        }
    )

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown VideoError reason {reason!r}")
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a clip."""

    container: str  # FFmpeg's format name, e.g. 'mov,mp4,m4a,3gp,3g2,mj2', 'avi', 'asf'
    codec: str  # the video codec, e.g. 'h264', 'mpeg4', 'msmpeg4v3'
    width: int
    height: int
    fps: float | None  # average frame rate
    duration_s: float | None
    frame_count: int | None  # from the container, else duration x fps
    created_at: datetime | None  # aware when the tag has a zone (QuickTime: UTC), else naive
    created_tag: str | None  # which tag created_at came from
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SampledFrame:
    frame_number: int  # index of the frame in the clip (0-based, from its time x fps)
    time_s: float  # offset from the start of the clip
    image: Image.Image  # RGB


def _rgb(frame: av.VideoFrame) -> Image.Image:
    img: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
    return img.convert("RGB")


def is_video(path: str) -> bool:
    """Whether ``path`` names a clip (by its extension, any case)."""
    name = path.rsplit("/", 1)[-1]
    return "." in name and name.rsplit(".", 1)[-1].lower() in VIDEO_EXTENSIONS


@contextmanager
def open_clip(source: Source) -> Iterator[av.container.InputContainer]:
    """The clip opened for reading; a clip FFmpeg cannot open raises :class:`VideoError`."""
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        raise VideoError(
            "corrupt_video",
            f"not a readable video ({exc}); the copy from the card may be truncated, copy it again",
        ) from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(
            "unsupported_video",
            f"FFmpeg cannot open this clip ({exc}); convert it to H.264 MP4 (e.g. with ffmpeg)",
        ) from exc
    try:
        if not container.streams.video:
            raise VideoError(
                "no_video_stream",
                "the file has no video stream (audio only or not a clip); remove it from the card",
            )
        yield container
    finally:
        container.close()


def _parse_time(value: str) -> datetime | None:
    text = value.strip().replace("Z", "+00:00")
    if not text or text.startswith(("0000", "1904-01-01", "1970-01-01")):
        return None  # QuickTime's / Unix's zero: the camera never set it
    for candidate in (text, text.replace(" ", "T", 1), text.replace(":", "-", 2)):
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        return moment  # aware (UTC) when the tag has a zone, as QuickTime's creation_time does
    return None


def _info(container: av.container.InputContainer) -> VideoInfo:
    stream = container.streams.video[0]
    tags: dict[str, str] = {}
    for meta in (container.metadata, stream.metadata):
        for key, value in meta.items():
            tags.setdefault(str(key).lower(), str(value))
    created_at, created_tag = None, None
    for tag in TIME_TAGS:
        if tag in tags:
            created_at = _parse_time(tags[tag])
            if created_at is not None:
                created_tag = tag
                break
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    duration: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    frames = int(stream.frames) if stream.frames else None
    if frames is None and duration is not None and fps:
        frames = round(duration * fps)
    ctx = stream.codec_context
    return VideoInfo(
        container=container.format.name,
        codec=ctx.name if ctx is not None else "unknown",
        width=int(ctx.width or 0),
        height=int(ctx.height or 0),
        fps=round(fps, 6) if fps else None,
        duration_s=round(duration, 6) if duration is not None else None,
        frame_count=frames,
        created_at=created_at,
        created_tag=created_tag,
        tags=tags,
    )


def probe(source: Source) -> VideoInfo:
    """Container metadata of a clip (no frame is decoded)."""
    with open_clip(source) as container:
        return _info(container)


def sample_frames(
    source: Source, rate: float = 1.0, max_frames: int | None = None
) -> Iterator[SampledFrame]:
    """The first frame, then one frame every ``1 / rate`` seconds, decoded lazily.

    ``rate <= 0`` samples every frame. A clip that breaks half-way raises :class:`VideoError`
    after the frames read so far were yielded.
    """
    with open_clip(source) as container:
        yield from _sample(container, rate, max_frames)


def _sample(
    container: av.container.InputContainer, rate: float, max_frames: int | None
) -> Iterator[SampledFrame]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    info = _info(container)
    fps = info.fps or 30.0
    step = 1.0 / rate if rate > 0 else 0.0
    tb = stream.time_base or Fraction(1, 1000)
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    target = 0.0  # offset of the next wanted frame
    half = 0.5 / fps
    emitted = 0
    seekable = True
    decoded_any = False
    while True:
        restart = False
        try:
            for frame in container.decode(stream):
                decoded_any = True
                if frame.pts is None and frame.time is None:
                    continue
                t = (float(frame.time) if frame.time is not None else 0.0) - start
                if t + half < target:
                    continue  # between samples: decoded (needed for the next one), dropped
                yield SampledFrame(
                    frame_number=max(0, round(t * fps)),
                    time_s=round(max(t, 0.0), 6),
                    image=_rgb(frame),
                )
                emitted += 1
                if max_frames is not None and emitted >= max_frames:
                    return
                if step <= 0:
                    continue
                target = (math.floor((t + half) / step) + 1) * step
                if seekable and target - t > SEEK_GAP_S:
                    try:
                        container.seek(int((target + start) / tb), stream=stream, backward=True)
                        restart = True
                        break
                    except (av.error.FFmpegError, OSError, ValueError):
                        seekable = False
        except av.error.FFmpegError as exc:
            reason = "corrupt_video" if decoded_any else "undecodable_video"
            raise VideoError(
                reason,
                f"the clip could not be decoded after {emitted} sampled frame(s) ({exc}); "
                "copy it again from the card, or convert it to H.264 MP4",
            ) from exc
        if not restart:
            break
    if not decoded_any:
        raise VideoError(
            "empty_video",
            "the clip holds no decodable frame; copy it again from the card",
        )


def frame_at(source: Source, frame_number: int, fps: float | None = None) -> Image.Image:
    """The frame numbered ``frame_number`` (as :func:`sample_frames` numbers them)."""
    with open_clip(source) as container:
        info = _info(container)
        rate = fps or info.fps or 30.0
        wanted = frame_number / rate
        stream = container.streams.video[0]
        tb = stream.time_base or Fraction(1, 1000)
        start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        if wanted > SEEK_GAP_S:
            with suppress(av.error.FFmpegError, OSError, ValueError):
                container.seek(int((wanted + start) / tb), stream=stream, backward=True)
        last: Image.Image | None = None
        try:
            for frame in container.decode(stream):
                t = (float(frame.time) if frame.time is not None else 0.0) - start
                last = _rgb(frame)
                if t + 0.5 / rate >= wanted:
                    return last
        except av.error.FFmpegError as exc:
            if last is None:
                raise VideoError("corrupt_video", f"the clip cannot be decoded ({exc})") from exc
        if last is None:
            raise VideoError("empty_video", "the clip holds no decodable frame")
        return last


def encoder() -> str:
    """The codec annotated clips are written with: H.264 when FFmpeg has it, else MPEG-4."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_clip(
    path: str, frames: Iterator[Image.Image], fps: float, options: dict[str, Any] | None = None
) -> int:
    """Encode RGB frames as an MP4 at ``fps``; returns the frames written."""
    count = 0
    with av.open(path, mode="w", format="mp4") as out:
        stream: Any = None
        for img in frames:
            if stream is None:
                stream = out.add_stream(encoder(), rate=Fraction(fps).limit_denominator(1000))
                stream.width = img.width - img.width % 2
                stream.height = img.height - img.height % 2
                stream.pix_fmt = "yuv420p"
                if options:
                    stream.options = options
            if img.size != (stream.width, stream.height):
                img = img.crop((0, 0, stream.width, stream.height))
            vframe = av.VideoFrame.from_image(img)  # type: ignore[no-untyped-call]
            for packet in stream.encode(vframe):
                out.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode(None):
                out.mux(packet)
    return count
