"""Memory of the video path on a long clip: streamed, never loaded whole (issue 9).

Generates a clip of about --mb megabytes with PyAV from a sample still (noise keeps the
bit rate up), then in fresh subprocesses measures peak RSS (ru_maxrss) of
  1. hashing it (flows.pipeline.video.sha256_stream),
  2. sampling it at 1 frame/s (models_ml.video.sample_frames), decoding every sampled frame,
against the baseline of a process that only imports the modules.

    .venv/bin/python bench/video_memory.py --mb 300 [--keep /tmp/long.mp4]

Measured (2 cores, shared with a test run): a 300 MiB 1280x720 H.264 clip (58 s, 1754 frames)
hashes in 0.4 s with RSS growing by 16 MiB (the 8 MiB read chunk) and samples 59 frames in
~30 s with RSS growing by 36 MiB, the same as for a 20 MiB clip (33 MiB): memory does not grow
with the clip's size, by path or by file object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STILL = REPO.parent / "shared/data/camtrap/google__cameratrapai/test_data/human.jpg"

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from flows.pipeline import video as _video
from models_ml import video
import threading
mode, path = sys.argv[1], sys.argv[2]

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

start_rss = rss_mb()
high = [start_rss]
stop = threading.Event()

def watch():
    while not stop.is_set():
        high[0] = max(high[0], rss_mb())
        time.sleep(0.02)

threading.Thread(target=watch, daemon=True).start()
t = time.perf_counter()
out = {{}}
if mode == "hash":
    out["sha256"], out["bytes"] = _video.sha256_stream("/", path.lstrip("/"))
elif mode == "sample":
    out["frames"] = sum(1 for _ in video.sample_frames(path, rate=1.0))
elif mode == "sample_fileobj":
    with open(path, "rb") as fh:
        out["frames"] = sum(1 for _ in video.sample_frames(fh, rate=1.0))
out["seconds"] = round(time.perf_counter() - t, 2)
stop.set()
high[0] = max(high[0], rss_mb())
out["rss_before_mb"] = round(start_rss, 1)
out["rss_growth_mb"] = round(high[0] - start_rss, 1)
out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print(json.dumps(out))
"""


def make_clip(path: Path, mb: int, fps: int = 30) -> None:
    import av
    import numpy as np
    from PIL import Image

    base = np.asarray(Image.open(STILL).convert("RGB").resize((1280, 720)), dtype=np.int16)
    rng = np.random.default_rng(0)
    noise = [rng.integers(-12, 12, base.shape, dtype=np.int16) for _ in range(8)]
    target = mb * 1024 * 1024
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream(
            "libx264" if "libx264" in av.codecs_available else "mpeg4", rate=Fraction(fps)
        )
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.gop_size = 2 * fps
        stream.options = {"preset": "ultrafast", "crf": "18"}
        i = 0
        while path.stat().st_size < target if path.exists() else True:
            frame = np.clip(base + noise[i % len(noise)], 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
            i += 1
        for packet in stream.encode(None):
            out.mux(packet)


def run(mode: str, path: Path) -> dict[str, object]:
    code = CHILD.format(repo=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", code, mode, str(path)], check=True, capture_output=True, text=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--keep", type=Path, default=None, help="write/reuse the clip here")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    clip = args.keep or Path(tmp.name) / "long.mp4"
    if not clip.exists():
        t = time.perf_counter()
        make_clip(clip, args.mb)
        print(f"generated {clip} in {time.perf_counter() - t:.0f} s")
    from models_ml import video

    info = video.probe(str(clip))
    print(
        f"clip: {clip.stat().st_size / 2**20:.0f} MiB, {info.width}x{info.height}, "
        f"{info.fps} fps, {info.duration_s:.0f} s, {info.frame_count} frames, {info.codec}"
    )
    for mode in ("hash", "sample", "sample_fileobj"):
        r = run(mode, clip)
        print(
            f"{mode:15s}: RSS {r['rss_before_mb']} MiB after imports, grew by at most "
            f"{r['rss_growth_mb']} MiB while working (peak RSS {r['peak_rss_mb']} MiB); "
            f"{r['seconds']} s; {r.get('frames', r.get('bytes'))}"
        )


if __name__ == "__main__":
    main()
