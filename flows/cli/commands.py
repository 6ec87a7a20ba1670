"""``trapflow``: the command line.

trapflow run --source DIR --once      process everything new under DIR, then exit
trapflow serve --source DIR --interval 60
trapflow marts | summary | dashboard | config
trapflow models list | pull | verify
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer
from rich.console import Console
from rich.table import Table

import flows  # noqa: F401  (switches telemetry off before anything else is imported)
from flows.settings import REPO_ROOT, Settings, load_settings

app = typer.Typer(
    name="trapflow",
    help="Camera-trap images in, detections and daily population marts out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="The model registry: list, pull from the mirror, verify.")
app.add_typer(models_app, name="models")
alerts_app = typer.Typer(help="Alerts: test the channels, list the outbox, deliver.")
app.add_typer(alerts_app, name="alerts")
export_app = typer.Typer(help="Field formats out: MegaDetector JSON, Camtrap DP, mart CSVs.")
app.add_typer(export_app, name="export")
import_app = typer.Typer(help="Field formats in: MegaDetector batch output JSON.")
app.add_typer(import_app, name="import")
dashboard_app = typer.Typer(help="Open the Streamlit dashboard; manage who may sign in.")
app.add_typer(dashboard_app, name="dashboard")
users_app = typer.Typer(help="Password sign-in users of the dashboard (docs/security.md).")
dashboard_app.add_typer(users_app, name="users")
console = Console()
err = Console(stderr=True)

WarehouseOpt = Annotated[
    Path | None,
    typer.Option(
        "--warehouse", "-w", help="DuckDB file (env TRAPFLOW_WAREHOUSE).", show_default=False
    ),
]
SourceOpt = Annotated[
    str | None,
    typer.Option("--source", "-s", help="Folder or URL to poll (env TRAPFLOW_SOURCE)."),
]
LakeOpt = Annotated[
    str | None,
    typer.Option("--lake", help="Scale-out: write raw rows as Parquet here (env TRAPFLOW_LAKE)."),
]
SitesOpt = Annotated[
    list[str] | None, typer.Option("--site", help="Only these sites (repeatable).")
]
LayoutOpt = Annotated[
    str | None,
    typer.Option("--layout", help="Folder pattern for site/camera, e.g. '{site}/{camera}/...'."),
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def _user_errors() -> tuple[type[BaseException], ...]:
    from flows.pipeline.models import ModelsUnavailableError
    from flows.store.dbt import DbtBuildError
    from flows.store.warehouse import WarehouseBusyError
    from models_ml.registry import ModelFetchError, ModelVerificationError

    return (
        FileNotFoundError, NotADirectoryError, PermissionError, DbtBuildError,
        ModelsUnavailableError, WarehouseBusyError, ModelFetchError, ModelVerificationError,
    )  # fmt: skip


@app.command()
def run(
    source: SourceOpt = None,
    warehouse: WarehouseOpt = None,
    layout: LayoutOpt = None,
    once: Annotated[
        bool, typer.Option("--once/--watch", help="Process what is new and exit, or keep polling.")
    ] = True,
    interval: Annotated[int | None, typer.Option(help="Seconds between polls (--watch).")] = None,
    marts: Annotated[bool, typer.Option("--marts/--no-marts", help="Run dbt build after.")] = True,
    batch_size: Annotated[int | None, typer.Option(help="Images per batch.")] = None,
    lake: LakeOpt = None,
) -> None:
    """Process everything new under the source: EXIF, detections, warehouse, marts."""
    settings = load_settings(
        source=source,
        warehouse=warehouse,
        layout=layout,
        build_marts=marts,
        batch_size=batch_size,
        interval=interval,
        lake=lake,
    )
    from flows.ingest import ingest

    while True:
        try:
            summary = ingest(
                source=settings.source, warehouse=str(settings.warehouse_path),
                layout=settings.layout, build=settings.build_marts,
                batch_size=settings.batch_size, lake=settings.lake,
            )  # fmt: skip
        except _user_errors() as exc:
            raise _fail(str(exc)) from None
        except duckdb.IOException as exc:  # disk full, permissions: the open batch rolled back
            raise _fail(
                f"could not write to the warehouse {settings.warehouse_path} ({exc}). The batch "
                "being loaded was rolled back and earlier batches are kept; free disk space or "
                "fix permissions, then run again."
            ) from None
        _print_summary(settings, summary)
        if once:
            return
        time.sleep(settings.interval)


@app.command()
def serve(
    source: SourceOpt = None,
    warehouse: WarehouseOpt = None,
    layout: LayoutOpt = None,
    interval: Annotated[int | None, typer.Option(help="Seconds between polls.")] = None,
    name: Annotated[str, typer.Option(help="Deployment name.")] = "trapflow-ingest",
    prefect_port: Annotated[
        int, typer.Option(help="Port of the local Prefect server started when none is set.")
    ] = 4200,
) -> None:
    """Keep polling as a Prefect served flow (a deployment with an interval schedule).

    Schedules need a real Prefect API: PREFECT_API_URL when set, else a server already on
    127.0.0.1:PORT, else one started here (and stopped with this command).
    """
    settings = load_settings(source=source, warehouse=warehouse, layout=layout, interval=interval)
    server = _ensure_prefect_server(prefect_port)
    from flows.ingest import ingest

    console.print(
        f"Serving [bold]ingest/{name}[/] every {settings.interval} s on {settings.source}; "
        f"Ctrl-C stops it. Runs show in the Prefect UI at {_ui_url()}."
    )
    try:
        ingest.serve(
            name=name,
            interval=settings.interval,
            limit=1,  # one poll at a time: a slow poll delays the next, never overlaps it
            parameters={
                "source": settings.source,
                "warehouse": str(settings.warehouse_path),
                "layout": settings.layout,
            },
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)


def _ui_url() -> str:
    return os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api").removesuffix("/api")


def _ensure_prefect_server(port: int) -> subprocess.Popen[bytes] | None:
    """Use PREFECT_API_URL, or a server already on the port, or start one (log in PREFECT_HOME)."""
    import urllib.request

    if os.environ.get("PREFECT_API_URL"):
        return None
    url = f"http://127.0.0.1:{port}/api"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    os.environ["PREFECT_API_URL"] = url
    if healthy():
        return None
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    console.print(f"Starting a Prefect server on {url} (log: {home / 'server.log'})")
    with (home / "server.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
            # its own process group: Ctrl-C stops the runner first, which still needs the API
            # to pause its deployment; `serve` stops the server after that
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while not healthy():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise _fail(
                f"the Prefect server did not start on port {port} (see {home / 'server.log'}); "
                "start one with 'prefect server start' and set PREFECT_API_URL"
            )
        time.sleep(0.5)
    return proc


@app.command("marts")
def marts_cmd(warehouse: WarehouseOpt = None, lake: LakeOpt = None) -> None:
    """Rebuild the dbt marts (dbt build: models and tests); --lake: over the workers' Parquet."""
    from flows.store.dbt import DbtBuildError, run_dbt

    settings = load_settings(warehouse=warehouse, lake=lake)
    if not settings.warehouse_path.exists() and not settings.lake:
        raise _fail(f"no warehouse at {settings.warehouse_path}: run 'trapflow run' first")
    try:
        result = run_dbt(settings, "build")
    except DbtBuildError as exc:
        raise _fail(str(exc)) from None
    console.print(f"dbt build passed in {result.seconds:.1f} s ({settings.warehouse_path})")


@app.command()
def summary(warehouse: WarehouseOpt = None) -> None:
    """What the warehouse holds: images, detections, sites, days, quarantine."""
    settings = load_settings(warehouse=warehouse)
    _print_summary(settings, None)


@dashboard_app.callback(invoke_without_command=True)
def dashboard(
    ctx: typer.Context,
    warehouse: WarehouseOpt = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
    host: Annotated[
        str, typer.Option(help="Address to listen on; beyond loopback needs sign-in.")
    ] = "127.0.0.1",
) -> None:
    """Open the Streamlit dashboard on the warehouse's marts (`users`: who may sign in)."""
    if ctx.invoked_subcommand is not None:
        return
    from flows.access.signin import AccessError, exposure_problem

    settings = load_settings(warehouse=warehouse)
    try:
        problem = exposure_problem(settings, host)
    except AccessError as exc:
        raise _fail(str(exc)) from None
    if problem:
        raise _fail(f"not starting the dashboard: {problem}")
    env = {**os.environ, "TRAPFLOW_WAREHOUSE": str(settings.warehouse_path)}
    argv = [
        sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "dashboard" / "streamlit_app.py"),
        "--server.headless", "true", "--server.address", host,
        "--server.port", str(port), "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"Dashboard on http://{shown}:{port}, sign-in: {settings.dashboard_auth} (Ctrl-C stops it)"
    )
    raise typer.Exit(subprocess.call(argv, env=env))


@users_app.command("add")
def dashboard_users_add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ + -).")],
    role: Annotated[str, typer.Option(help="viewer or ranger.")] = "viewer",
) -> None:
    """Add a user, or set a new role and password (asked for, hidden, twice)."""
    from flows.access import signin as _access

    path = _access.users_path(load_settings())
    try:
        _access.check_name(name)
        _access.check_role(role)
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        is_new = _access.add_user(path, name, role, password)
    except _access.AccessError as exc:
        raise _fail(str(exc)) from None
    console.print(f"{'added' if is_new else 'updated'} {name} ({role}) in {path}")


@users_app.command("remove")
def dashboard_users_remove(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Remove a user (their open sessions end at the next click)."""
    from flows.access import signin as _access

    path = _access.users_path(load_settings())
    try:
        removed = _access.remove_user(path, name)
    except _access.AccessError as exc:
        raise _fail(str(exc)) from None
    if not removed:
        raise _fail(f"no user {name!r} in {path}: see `trapflow dashboard users list`")
    console.print(f"removed {name} from {path}")


@users_app.command("list")
def dashboard_users_list() -> None:
    """The users who may sign in with a password, and their roles (never their passwords)."""
    from flows.access import signin as _access

    path = _access.users_path(load_settings())
    try:
        users = _access.load_users(path)
    except _access.AccessError as exc:
        raise _fail(str(exc)) from None
    table = Table("user", "role")
    for user in users.values():
        table.add_row(user.name, user.role)
    console.print(table)
    console.print(f"{len(users)} users in {path}")


@app.command()
def annotate(
    clip: Annotated[Path, typer.Argument(help="Video clip (.mp4, .avi, .mov, ...).")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output MP4 (default CLIP.annotated.mp4).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Frames per second sampled (default video_sample_rate).")
    ] = None,
    blur: Annotated[
        bool, typer.Option("--blur/--no-blur", help="Blur people (--no-blur: rangers only).")
    ] = True,
) -> None:
    """Write an annotated copy of a clip: boxes and labels on every sampled frame (H.264 MP4),
    people blurred unless --no-blur."""
    from flows.pipeline import process as _process
    from flows.pipeline import video as _video
    from models_ml.video import VideoError, encoder

    if not clip.is_file():
        raise _fail(f"{clip} is not a file: pass the path of a video clip")
    settings = load_settings()
    target = out or clip.with_name(f"{clip.stem}.annotated.mp4")
    try:
        model_dir = _process.ensure_pipeline_models(settings)
        ctx = _process.batch_context(settings, model_dir, str(clip.parent), "annotate")
        result, written = _video.annotate_clip(
            str(clip), target, ctx.ensemble, dict(settings.detection_thresholds),
            settings.inference_floor, rate=settings.video_sample_rate if rate is None else rate,
            blur_people=blur,
        )  # fmt: skip
    except VideoError as exc:
        raise _fail(f"{clip}: {exc}") from exc
    except _user_errors() as exc:
        raise _fail(str(exc)) from exc
    roll = _video.rollup(
        result.frames, dict(settings.detection_thresholds), _video.counting_models(ctx.ensemble)
    )
    seen = ", ".join(
        f"{cat} max {v['max_confidence']:.2f} MaxN {int(v['max_n'])}" for cat, v in roll.items()
    )
    console.print(
        f"wrote {target} ({written} annotated frames, {encoder()}); {seen or 'nothing detected'}"
    )


@app.command()
def config() -> None:
    """Show the effective settings and where each can be set."""
    settings = load_settings()
    table = Table("setting", "value", "env", title="trapflow settings")
    for name in Settings.model_fields:
        table.add_row(name, str(getattr(settings, name)), f"TRAPFLOW_{name.upper()}")
    console.print(table)
    console.print(f"warehouse file: {settings.warehouse_path}\nmodel folder: {settings.model_path}")


@models_app.command("list")
def models_list() -> None:
    """Every model in the registry and whether a verified copy is here."""
    from models_ml import registry

    settings = load_settings()
    table = Table("model", "kind", "version", "size", "licence", "here", "from")
    for spec in registry.load_manifest().values():
        ok = registry.verify(spec, settings.model_path).ok
        table.add_row(
            spec.name, spec.kind, spec.version, f"{spec.size / 1e6:.1f} MB", spec.licence,
            "[green]verified[/]" if ok else "[yellow]missing[/]",
            spec.url or "mirror",
        )  # fmt: skip
    console.print(table)
    console.print(f"model folder: {settings.model_path}; mirror: {settings.model_mirror or '-'}")


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to pull (default: all).")
    ] = None,
) -> None:
    """Copy or download models from the mirror, checking every SHA-256."""
    from models_ml import registry

    settings = load_settings()
    manifest = registry.load_manifest()
    wanted = names or list(manifest)
    unknown = [n for n in wanted if n not in manifest]
    if unknown:
        raise _fail(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(manifest)}")
    if not settings.model_mirror:
        raise _fail("no model mirror: set TRAPFLOW_MODEL_MIRROR to a folder or http(s) URL")
    for name in wanted:
        spec = manifest[name]
        try:
            path = registry.pull(spec, settings.model_path, settings.model_mirror)
        except _user_errors() as exc:
            raise _fail(str(exc)) from None
        console.print(f"[green]verified[/] {spec.model_id} -> {path}")


@models_app.command("verify")
def models_verify() -> None:
    """Re-check the SHA-256 of every model present; exit 1 if any is wrong."""
    from models_ml import registry

    settings = load_settings()
    bad = 0
    for spec in registry.load_manifest().values():
        result = registry.verify(spec, settings.model_path)
        console.print(
            f"{'[green]ok[/]' if result.ok else '[red]FAIL[/]'} {spec.name}: {result.detail}"
        )
        bad += not result.ok
    if bad:
        raise typer.Exit(1)


@app.command()
def train(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Folder with one sub-folder of images per species."),
    ] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="CSV with file,label columns.")] = None,
    warehouse: Annotated[
        Path | None,
        typer.Option("--warehouse", "-w", help="Also use the dashboard's reviewed labels."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default <model_dir>/trained).")
    ] = None,
    name: Annotated[str, typer.Option(help="Model name; re-training adds a version.")] = (
        "species_head"
    ),
    min_per_class: Annotated[int, typer.Option(help="Classes with fewer are left out.")] = 5,
    max_per_class: Annotated[int, typer.Option(help="Larger classes are subsampled.")] = 1000,
    val_fraction: Annotated[float, typer.Option(help="Held out per class for evaluation.")] = 0.25,
    min_box_confidence: Annotated[float, typer.Option(help="Best animal box at least.")] = 0.2,
    whole_frame: Annotated[
        bool,
        typer.Option(
            "--whole-frame/--boxes-only", help="Without an animal box: use the whole frame."
        ),
    ] = True,
    seed: Annotated[int, typer.Option(help="Random seed (split, subsampling).")] = 0,
) -> None:
    """Train a species head on your labelled images, evaluate it, and register it.

    See docs/training.md. The new head becomes the species model of the next run unless
    species_model is set.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from flows.pipeline.training import gather_images, run_training
    from models_ml.training import TrainingConfig, TrainingDataError

    settings = load_settings()
    cfg = TrainingConfig(
        min_per_class=min_per_class, max_per_class=max_per_class, val_fraction=val_fraction,
        seed=seed, min_box_confidence=min_box_confidence, whole_frame_fallback=whole_frame,
    )  # fmt: skip
    try:
        items = gather_images(data, csv, warehouse)
        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=err, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("detect + embed", total=len(items))

            def tick(done: int, total: int, _name: str) -> None:
                bar.update(task, completed=done, total=total)

            result = run_training(settings, items, out=out, name=name, config=cfg, progress=tick)
    except TrainingDataError as exc:
        raise _fail(str(exc)) from None
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    ev = result.evaluation
    table = Table("label", "precision", "recall", "F1", "support", title=result.model_id)
    for c in ev.per_class:
        table.add_row(
            c.label, f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}", str(c.support)
        )
    console.print(table)
    console.print(
        f"held-out accuracy [bold]{ev.accuracy:.3f}[/] vs majority baseline "
        f"{ev.baseline_accuracy:.3f} ('{ev.baseline_label}'); {ev.n_train} train / "
        f"{ev.n_validation} held-out images; {result.cache_hits} embeddings from the cache"
    )
    if result.excluded_classes:
        left = ", ".join(f"{k} ({n})" for k, n in result.excluded_classes.items())
        console.print(f"left out (fewer than {min_per_class} images): {left}")
    if result.skipped:
        console.print(f"{len(result.skipped)} image(s) skipped; reasons in report.md")
    console.print(
        f"report: {result.out_dir / 'report.md'}, confusion matrix: "
        f"{result.out_dir / 'confusion.png'}\nregistered as [bold]{result.model_id}[/]; "
        "the next run uses it unless species_model is set"
    )
    if ev.accuracy <= ev.baseline_accuracy:
        err.print(
            "[yellow]warning:[/] the head does not beat the majority baseline; add images "
            "before relying on it (species_model = '' switches the species stage off)"
        )


def _print_summary(settings: Settings, run: Any) -> None:
    from flows.pipeline.summary import summarize

    s = summarize(settings.warehouse_path)
    if run is not None:
        st = run.stats
        console.rule(f"[bold]trapflow run {run.run_id[:8]}")
        console.print(
            f"source     {run.source_uri}: {run.files_listed} media files, {run.files_new} new "
            f"or changed ({run.other_files} other files ignored)"
        )
        console.print(
            f"this run   {st.images} images processed, {st.duplicates} duplicates, "
            f"{st.quarantined} quarantined, {st.warnings} with warnings, {st.detections} boxes"
        )
        if run.duration_s:
            console.print(
                f"time       {run.duration_s:.1f} s = {run.images_per_s:.2f} images/s end to end "
                f"(list {run.list_s:.1f} s, read+decode {st.read_s:.1f} s, "
                f"detect {st.detect_s:.1f} s, load {st.load_s:.1f} s, marts {run.marts_s:.1f} s)"
            )
    console.rule("[bold]warehouse")
    sources = ", ".join(f"{k}: {v}" for k, v in s.timestamp_sources.items()) or "-"
    console.print(f"images     {s.images} (timestamps from {sources})")
    if s.marts_built:
        for category, images, boxes in s.categories:
            console.print(f"{category:<10} {images} images, {boxes} boxes above threshold")
        labels = ", ".join(f"{lab} ({n})" for _c, lab, n in s.labels)
        console.print(f"labels     {labels or '-'}")
        console.print(
            f"sites      {s.sites} sites, {s.cameras} cameras, {s.days} days "
            f"({s.first_day} .. {s.last_day})"
        )
    else:
        console.print("marts      not built yet: run 'trapflow marts'")
    skipped = sum(n for _r, a, n in s.quarantined if a == "skipped")
    console.print(
        f"quarantine {skipped} files skipped"
        + (
            ": " + ", ".join(f"{r} {n}" for r, a, n in s.quarantined if a == "skipped")
            if skipped
            else ""
        )
    )
    warned = [(r, n) for r, a, n in s.quarantined if a != "skipped"]
    if warned:
        console.print(
            "warnings   "
            + ", ".join(f"{r} {n}" for r, n in warned)
            + " (processed; see raw.quarantine)"
        )
    console.print(f"warehouse  {s.warehouse}")
    console.print(f"dashboard  trapflow dashboard --warehouse {s.warehouse}")
    home = os.environ.get("PREFECT_HOME", "~/.prefect")
    console.print(f"Prefect UI PREFECT_HOME={home} prefect server start  ->  http://127.0.0.1:4200")


@alerts_app.command("test")
def alerts_test() -> None:
    """Send a test message to every configured alert URL and say which worked (redacted)."""
    from flows.alerts import engine as _alerts

    settings = load_settings()
    try:
        results = _alerts.send_test(settings)
    except _alerts.AlertConfigError as exc:
        raise _fail(str(exc)) from None
    if not results:
        raise _fail(
            "no alert URLs configured: set TRAPFLOW_ALERT_URLS (comma-separated Apprise URLs) "
            "or TRAPFLOW_ALERT_CHANNELS__<NAME>"
        )
    for r in results:
        mark = "[green]ok[/]" if r.ok else "[red]FAILED[/]"
        console.print(f"{mark} {r.channel}: {r.target}" + (f" ({r.error})" if r.error else ""),
                      markup=True, highlight=False)  # fmt: skip
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@alerts_app.command("list")
def alerts_list(
    warehouse: WarehouseOpt = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """The alert outbox: pending, sent and failed alerts with attempts and the last error."""
    from flows.alerts import engine as _alerts

    settings = load_settings(warehouse=warehouse)
    rows = _alerts.list_outbox(settings, limit)
    table = Table("created (UTC)", "status", "kind", "rule", "site", "camera", "local time",
                  "images", "tries", "last error", title=f"alerts ({len(rows)} shown)")  # fmt: skip
    for r in rows:
        table.add_row(
            f"{r['created_at']:%Y-%m-%d %H:%M}", r["status"], r["kind"], r["rule_name"],
            r["site_id"] or "", r["camera_id"] or "", str(r["event_at"] or ""),
            str(r["media_count"]), str(r["attempts"]), (r["last_error"] or "")[:80],
        )  # fmt: skip
    console.print(table)


@alerts_app.command("deliver")
def alerts_deliver(warehouse: WarehouseOpt = None) -> None:
    """Send the pending alerts that are due now (what every run does at its end)."""
    from flows.alerts import engine as _alerts

    settings = load_settings(warehouse=warehouse)
    try:
        result = _alerts.deliver_alerts(settings)
    except _alerts.AlertConfigError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"{result.sent} sent, {result.retrying} to retry later, {result.failed} failed for good"
    )


# ---- field formats (flows/formats/exports.py, docs/formats.md) ----------------------------------


@export_app.command("mdjson")
def export_mdjson(
    out: Annotated[Path, typer.Option("--out", "-o", help="The .json file to write.")],
    warehouse: WarehouseOpt = None,
    site: SitesOpt = None,
    detector: Annotated[
        str | None,
        typer.Option(help="Export every category from this model (e.g. an imported run)."),
    ] = None,
) -> None:
    """MegaDetector batch output (format 1.5) for Timelapse, AddaxAI and MD's tools."""
    from flows.formats import exports as _exports

    settings = load_settings(warehouse=warehouse)
    if not settings.warehouse_path.exists():
        raise _fail(f"no warehouse at {settings.warehouse_path}: run 'trapflow run' first")
    try:
        results = _exports.mdjson_results(
            settings.warehouse_path,
            animal_model=settings.animal_model,
            general_model=settings.general_model,
            typical_threshold=settings.detection_thresholds.get("animal", 0.25),
            conservative_threshold=settings.inference_floor,
            site=site or (),
            layout=settings.layout,
            detector=detector,
        )
    except _exports.ExportError as exc:
        raise _fail(str(exc)) from None
    _exports.write_mdjson(out, results)
    images = results["images"]
    failed = sum(1 for i in images if i.get("failure"))
    boxes = sum(len(i["detections"] or []) for i in images)
    console.print(f"{out}: {len(images)} images ({failed} failures), {boxes} detections")


@export_app.command("camtrapdp")
def export_camtrapdp(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the package.")],
    warehouse: WarehouseOpt = None,
    title: Annotated[str, typer.Option(help="Package and project title.")] = (
        "trapflow camera-trap data"
    ),
    contributor: Annotated[str, typer.Option(help="Contact named in the package.")] = (
        "trapflow user"
    ),
    missing_location: Annotated[
        str | None,
        typer.Option(help="'LAT,LON,UNCERTAINTY_M' for deployments without coordinates."),
    ] = None,
) -> None:
    """A Camtrap DP 1.0 package (datapackage.json + deployments/media/observations.csv)."""
    from flows.formats import exports as _exports

    settings = load_settings(warehouse=warehouse)
    fallback = None
    if missing_location:
        try:
            lat, lon, unc = (float(v) for v in missing_location.split(","))
        except ValueError:
            raise _fail(
                f"--missing-location {missing_location!r}: give 'LAT,LON,UNCERTAINTY_M', "
                "e.g. '-1.95,34.68,20000'"
            ) from None
        fallback = (lat, lon, unc)
    try:
        result = _exports.export_camtrapdp(
            settings.warehouse_path, out, animal_model=settings.animal_model,
            general_model=settings.general_model, sensitive=settings.sensitive_species,
            grid_km=settings.sensitive_grid_km, title=title, contributor=contributor,
            missing_location=fallback,
        )  # fmt: skip
    except _exports.ExportError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"{out}: {result.deployments} deployments, {result.media} media, "
        f"{result.observations_media} media-level and {result.observations_event} event-level "
        f"observations; {len(result.generalised)} deployments with generalised coordinates"
    )
    if result.timestamp_issues:
        err.print(
            f"[yellow]warning:[/] {len(result.timestamp_issues)} deployments have no UTC offset "
            "(timestampIssues=true, written as +00:00): add utc_offset in deployments.csv"
        )
    if result.no_coordinates:
        err.print(
            f"[yellow]warning:[/] {len(result.no_coordinates)} deployments have no coordinates, "
            "which Camtrap DP requires: add them in deployments.csv or pass --missing-location"
        )


@export_app.command("csv")
def export_csv(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for one CSV per mart.")],
    warehouse: WarehouseOpt = None,
) -> None:
    """Every mart as a CSV file (header row, ISO dates, empty cell = null); coordinates at
    sites that recorded a sensitive species generalised."""
    from flows.formats import exports as _exports

    settings = load_settings(warehouse=warehouse)
    try:
        paths = _exports.export_mart_csvs(
            settings.warehouse_path, out, sensitive=settings.sensitive_species,
            grid_km=settings.sensitive_grid_km, thresholds=settings.detection_thresholds,
            classification_threshold=settings.classification_threshold,
        )  # fmt: skip
    except _exports.ExportError as exc:
        raise _fail(str(exc)) from None
    console.print(f"{out}: {len(paths)} CSV files ({', '.join(p.name for p in paths)})")


@export_app.command("images")
def export_images(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the copies.")],
    warehouse: WarehouseOpt = None,
    site: SitesOpt = None,
    species: Annotated[
        list[str] | None,
        typer.Option("--species", help="Only images with this label counted (repeatable)."),
    ] = None,
    blur: Annotated[
        bool, typer.Option("--blur/--no-blur", help="Blur every person box (default).")
    ] = True,
    strip_gps: Annotated[
        bool,
        typer.Option(
            "--strip-gps/--keep-gps",
            help="Remove EXIF GPS (default); kept GPS is still removed at sensitive sites.",
        ),
    ] = True,
) -> None:
    """Copies of images to hand on: people blurred, GPS stripped, manifest.csv with SHA-256s
    (flows/formats/images.py, docs/formats.md). The originals are never modified."""
    from flows.formats import exports as _exports
    from flows.formats import images as _image_export

    settings = load_settings(warehouse=warehouse)
    try:
        result = _image_export.export_images(
            settings.warehouse_path, out, sites=site or (), species=species or (), blur=blur,
            strip_gps=strip_gps, sensitive=settings.sensitive_species,
            thresholds=settings.detection_thresholds,
            classification_threshold=settings.classification_threshold,
            max_image_pixels=settings.max_image_pixels,
        )  # fmt: skip
    except _exports.ExportError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"{out}: {result.exported} images ({result.blurred} with people blurred, "
        f"{result.gps_stripped} with GPS stripped, {result.copied} unchanged copies); "
        f"SHA-256s in {result.manifest}"
    )
    if result.sensitive_gps_stripped:
        err.print(
            f"[yellow]note:[/] GPS stripped from {result.sensitive_gps_stripped} images at sites "
            "that recorded a sensitive species, although --keep-gps was given"
        )
    if result.skipped:
        from rich.markup import escape

        path, why = result.skipped[0]
        err.print(
            f"[yellow]warning:[/] {len(result.skipped)} skipped (first: {escape(path)}: "
            f"{escape(why)})",
            highlight=False,
        )


@import_app.command("mdjson")
def import_mdjson(
    file: Annotated[Path, typer.Argument(help="MegaDetector batch output .json.")],
    source: Annotated[
        str, typer.Option("--source", "-s", help="Folder the file's paths are relative to.")
    ],
    warehouse: WarehouseOpt = None,
    layout: LayoutOpt = None,
) -> None:
    """Load results MegaDetector (or another tool) already produced for the images in DIR."""
    from flows.formats import exports as _exports

    settings = load_settings(warehouse=warehouse, layout=layout)
    try:
        result = _exports.import_mdjson(
            settings.warehouse_path, file, source, layout=settings.layout,
            max_image_pixels=settings.max_image_pixels,
        )  # fmt: skip
    except _exports.MdJsonError as exc:
        raise _fail(str(exc)) from None
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"imported {file}: {result.images} entries, {result.media_added} new images, "
        f"{result.detections_added} detections, {result.classifications_added} "
        f"classifications, {result.failures} failures (run {result.run_id})"
    )
    if result.missing:
        err.print(
            f"[yellow]warning:[/] {len(result.missing)} files not found under {source} "
            f"(first: {result.missing[0]}): is --source the folder the JSON's paths start from?"
        )
    if result.skipped_categories:
        err.print(
            f"[yellow]warning:[/] skipped detections of unknown categories or without a box: "
            f"{dict(result.skipped_categories)}"
        )
    if settings.build_marts and result.detections_added:
        console.print("run 'trapflow marts' to count them (only the configured detectors count)")


def main() -> None:
    app()
