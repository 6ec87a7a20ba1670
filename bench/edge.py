"""Edge mode on the sample card: bytes uploaded against the whole card, peak RSS against the
512 MB limit, CPU time against one core (docs/edge.md).

    .venv/bin/python bench/edge.py [--card DIR]

Runs ``trapflow-edge --once`` in a child process (a fresh queue and a folder target under a
temporary directory) and reads its peak RSS and CPU time from ``resource.getrusage``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RSS_LIMIT_MB = 512.0
CORES_LIMIT = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", default=str(REPO.parent / "shared" / "data" / "camtrap"))
    args = parser.parse_args()
    card = Path(args.card)
    card_bytes = sum(p.stat().st_size for p in card.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        up, state = Path(tmp) / "up", Path(tmp) / "state"
        up.mkdir()
        models = os.environ.get("TRAPFLOW_MODEL_DIR") or str(Path(tmp) / "models")
        # the models are pulled (copied from the mirror) before the measured run
        subprocess.run(
            [sys.executable, "-c", "from flows.edge.cli import main; main()", "--card",
             str(Path(tmp) / "up"), "--upload", str(Path(tmp) / "warm"), "--state-dir",
             str(Path(tmp) / "warm-state"), "--model-dir", models, "--once"],
            check=False, capture_output=True, cwd=REPO,
        )  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-c", "from flows.edge.cli import main; main()", "--card",
             str(card), "--upload", str(up), "--state-dir", str(state), "--model-dir", models,
             "--once"],
            capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        uploaded = sum(p.stat().st_size for p in up.rglob("*") if p.is_file())
        photos = [p for p in up.rglob("*") if p.is_file() and "_manifests" not in p.parts]
        manifests = sum(p.stat().st_size for p in (up / "_manifests").glob("*"))
    if run.returncode != 0:
        sys.exit(f"edge run failed ({run.returncode}): {run.stderr.strip()[-500:]}")
    rss_mb = usage.ru_maxrss / 1024  # KiB on Linux; the largest child (the measured run)
    cpu_s = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    print(run.stdout.strip())
    print(f"card: {card_bytes / 1e6:.1f} MB; uploaded {len(photos)} photos + manifests: "
          f"{uploaded / 1e6:.1f} MB (manifests {manifests / 1e3:.1f} kB)")  # fmt: skip
    print(f"bytes uploaded / card bytes: {uploaded / card_bytes:.3f}")
    print(f"peak RSS: {rss_mb:.0f} MB; / {RSS_LIMIT_MB:.0f} MB limit: {rss_mb / RSS_LIMIT_MB:.2f}")
    print(f"CPU {cpu_s:.1f} s over {wall:.1f} s wall: {cpu_s / wall:.2f} cores "
          f"(limit {CORES_LIMIT:.0f}: {cpu_s / wall / CORES_LIMIT:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
