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

A third side times a warm poller, ``trapflow run --watch --interval N`` (``--watch-interval``,
default 10 s), with photos written at spread-out points of its cycle.

With ``--sqs``, a fourth side: a bucket and an SQS queue on moto's server (loopback), and
``trapflow listen --source s3://traps/card --sqs URL`` long-polling the queue; each photo is
PUT into the bucket and its S3 event notification sent to the queue right after, as S3 does
(moto's server does not deliver bucket notifications itself), so the figure is PUT -> alert.

Prints ONE JSON line: the median and each latency per side, ``ratio`` =
poll_once_median_s / listen_median_s (how many times sooner a photo's alert arrives),
``ratio_watch`` = watch_median_s / listen_median_s and, with ``--sqs``, ``sqs_median_s``.
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


def _served(
    argv: list[str],
    env: dict[str, str],
    root: Path,
    name: str,
    sink: Any,
    args: Any,
    folder: Path,
    ready: str | None,
    offset_s: float = 0.0,
) -> list[float]:
    """Latencies of photos written into ``folder`` while the command ``argv`` runs (the first
    photo is the warm-up); ``ready``: a line the command prints once it listens. Photo n is
    written ``n * offset_s`` (modulo a poll interval) after the previous alert, so photos land
    at spread-out points of a poll's cycle."""
    log_path = root / f"{name}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(argv, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + args.timeout
        while ready and ready not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(log_path.read_text()[-2000:])
            time.sleep(0.1)
        for n in range(args.photos + 1):
            if n and offset_s:
                time.sleep((n * offset_s) % args.watch_interval)
            site = f"{name[0].upper()}{n}"
            written = _write(folder, site, data_of(args), n)
            arrived = _wait(sink, site, args.timeout)
            if n:  # the first is the warm-up
                latencies.append(arrived - written)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    return latencies


def _sqs_side(args: Any, root: Path, sink: Any, trapflow: list[str]) -> list[float]:
    """PUT -> alert through an SQS queue (see the module's docstring)."""
    import botocore.session

    from tests._servers import moto_s3

    with moto_s3():
        session = botocore.session.get_session()
        s3 = session.create_client("s3", region_name="us-east-1")
        sqs = session.create_client("sqs", region_name="us-east-1")
        s3.create_bucket(Bucket="traps")
        url = sqs.create_queue(QueueName="traps-events")["QueueUrl"]
        env = {**_env(root / "home-sqs", sink.port), "TRAPFLOW_LISTEN_SQS_WAIT_S": "20"}
        log_path = root / "sqs.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [*trapflow, "listen", "--source", "s3://traps/card", "--sqs", url,
                 "--warehouse", str(root / "sqs.duckdb")],
                env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            latencies: list[float] = []
            try:
                deadline = time.monotonic() + args.timeout
                while "Listening for" not in log_path.read_text():
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(log_path.read_text()[-2000:])
                    time.sleep(0.1)
                for n in range(args.photos + 1):
                    site, key = f"Q{n}", f"card/Q{n}/cam01/human.jpg"
                    written = time.perf_counter()
                    s3.put_object(
                        Bucket="traps", Key=key, Body=data_of(args) + n.to_bytes(4, "big")
                    )
                    obj = {"key": key, "sequencer": f"{n + 1:016X}"}
                    record = {
                        "eventVersion": "2.1", "eventSource": "aws:s3",
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": "traps"}, "object": obj},
                    }  # fmt: skip
                    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": [record]}))
                    arrived = _wait(sink, site, args.timeout)
                    if n:
                        latencies.append(arrived - written)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    return latencies


def data_of(args: Any) -> bytes:
    data: bytes = (args.shared / "data" / "camtrap" / PHOTO).read_bytes()
    return data


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=3, help="timed photos per side")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument(
        "--watch-interval", type=int, default=10,
        help="also time `trapflow run --watch --interval N` (a warm poller); 0: not",
    )  # fmt: skip
    parser.add_argument("--sqs", action="store_true", help="also time listen --sqs (moto)")
    args = parser.parse_args()
    trapflow = [sys.executable, "-m", "flows.cli"]
    with tempfile.TemporaryDirectory() as tmp, json_sink() as sink:
        root = Path(tmp)
        env = _env(root / "home", sink.port)
        folders = {name: root / name for name in ("listened", "once", "watched")}
        for folder in folders.values():
            folder.mkdir()
        listen_s = _served(
            [*trapflow, "listen", "--source", str(folders["listened"]), "--warehouse",
             str(root / "listen.duckdb")],
            env, root, "listen", sink, args, folders["listened"], "Listening for",
        )  # fmt: skip
        once_s: list[float] = []
        for n in range(args.photos + 1):
            site = f"O{n}"
            written = _write(folders["once"], site, data_of(args), 1000 + n)
            subprocess.run(
                [*trapflow, "run", "--once", "--no-marts", "--source", str(folders["once"]),
                 "--warehouse", str(root / "once.duckdb")],
                env=env, cwd=root, check=True, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            arrived = _wait(sink, site, args.timeout)
            if n:
                once_s.append(arrived - written)
        watch_s: list[float] = []
        if args.watch_interval:
            watch_s = _served(
                [*trapflow, "run", "--watch", "--interval", str(args.watch_interval),
                 "--no-marts", "--source", str(folders["watched"]), "--warehouse",
                 str(root / "watch.duckdb")],
                env, root, "watch", sink, args, folders["watched"], None,
                offset_s=args.watch_interval * 0.37,
            )  # fmt: skip
        sqs_s = _sqs_side(args, root, sink, trapflow) if args.sqs else []
        shutil.rmtree(root / "home", ignore_errors=True)
    listen = _median(listen_s)
    result = {
        "photos": args.photos,
        "listen_median_s": listen,
        "listen_s": [round(s, 3) for s in listen_s],
        "poll_once_median_s": _median(once_s),
        "poll_once_s": [round(s, 3) for s in once_s],
        "ratio": round(_median(once_s) / listen, 2),
        "watch_interval_s": args.watch_interval,
        "watch_median_s": _median(watch_s),
        "watch_s": [round(s, 3) for s in watch_s],
        "ratio_watch": round(_median(watch_s) / listen, 2) if watch_s else None,
        "sqs_median_s": _median(sqs_s) if sqs_s else None,
        "sqs_s": [round(s, 3) for s in sqs_s],
        "cpus": os.cpu_count() or 0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
