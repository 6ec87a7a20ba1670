"""Photo written -> alert delivered, on loopback: ``trapflow listen`` against a poll.

    .venv/bin/python bench/listen_latency.py --photos 3

Two folder sources, two warehouses, one JSON alert endpoint on 127.0.0.1 (as the alert tests
stand one up). ``trapflow listen`` runs as its own process on the first folder (watchdog's file
events, the default ``listen_settle_s``); for the baseline, each photo is written to the second
folder and ``trapflow run --once --no-marts`` is started at once: a poll with no wait for its
interval, the best case of ``trapflow run --watch`` (which adds half its ``--interval`` on
average). The same person photo is used each time (a few bytes appended after the JPEG's end so
each copy is new media, and a site of its own so no cooldown holds an alert back). One warm-up
photo per side is not timed (models pulled, live views compiled).

Prints ONE JSON line: the median and each latency per side, and ``ratio`` =
poll_median_s / listen_median_s (how many times sooner a photo's alert arrives).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests._servers import json_sink  # noqa: E402

PHOTO = "google__cameratrapai/test_data/human.jpg"


def _env(home: Path, sink_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "TRAPFLOW_HOME": str(home),
        "TRAPFLOW_ALERT_URLS": f"json://127.0.0.1:{sink_port}/alerts",
        "TRAPFLOW_LAYOUT": "{site}/{camera}/...",
        "TRAPFLOW_ALERT_COOLDOWN_MIN": "0",
        "DO_NOT_TRACK": "1",
        "ORT_DISABLE_TELEMETRY": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def _write(folder: Path, site: str, data: bytes, n: int) -> float:
    target = folder / site / "cam01" / "human.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    part.write_bytes(data + n.to_bytes(4, "big"))  # after EOI: a new media id, same photo
    part.rename(target)  # as a copy tool finishes: the file appears whole
    return time.perf_counter()


def _wait(sink: Any, site: str, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(f"site {site}," in str(m.get("title")) for m in sink.received):
            return time.perf_counter()
        time.sleep(0.01)
    raise SystemExit(f"no alert for {site} within {timeout_s} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=3, help="timed photos per side")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    data = (args.shared / "data" / "camtrap" / PHOTO).read_bytes()
    trapflow = [sys.executable, "-m", "flows.cli"]
    with tempfile.TemporaryDirectory() as tmp, json_sink() as sink:
        root = Path(tmp)
        env = _env(root / "home", sink.port)
        listened, polled = root / "listened", root / "polled"
        listened.mkdir()
        polled.mkdir()
        log = (root / "listen.log").open("w")
        proc = subprocess.Popen(
            [*trapflow, "listen", "--source", str(listened), "--warehouse",
             str(root / "listen.duckdb")],
            env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + args.timeout
            while "Listening for" not in (root / "listen.log").read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit((root / "listen.log").read_text()[-2000:])
                time.sleep(0.1)
            listen_s: list[float] = []
            for n in range(args.photos + 1):
                site = f"L{n}"
                written = _write(listened, site, data, n)
                arrived = _wait(sink, site, args.timeout)
                if n:  # the first is the warm-up
                    listen_s.append(arrived - written)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            log.close()
        poll_s: list[float] = []
        for n in range(args.photos + 1):
            site = f"P{n}"
            written = _write(polled, site, data, 1000 + n)
            subprocess.run(
                [*trapflow, "run", "--once", "--no-marts", "--source", str(polled),
                 "--warehouse", str(root / "poll.duckdb")],
                env=env, cwd=root, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            arrived = _wait(sink, site, args.timeout)
            if n:
                poll_s.append(arrived - written)
        shutil.rmtree(root / "home", ignore_errors=True)
    listen_median = statistics.median(listen_s)
    poll_median = statistics.median(poll_s)
    result = {
        "photos": args.photos,
        "listen_median_s": round(listen_median, 3),
        "listen_s": [round(s, 3) for s in listen_s],
        "poll_once_median_s": round(poll_median, 3),
        "poll_once_s": [round(s, 3) for s in poll_s],
        "ratio": round(poll_median / listen_median, 2),
        "cpus": os.cpu_count() or 0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
