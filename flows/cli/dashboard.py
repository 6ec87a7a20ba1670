"""``trapflow dashboard``: the Streamlit dashboard and who may sign in to it."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer
from rich.table import Table

from flows.cli._app import (
    WarehouseOpt,
    console,
    dashboard_app,
    fail,
    users_app,
)
from flows.settings import REPO_ROOT, load_settings


def streamlit_command(host: str, port: int) -> list[str]:
    """``streamlit run`` of the dashboard as users get it: headless, no usage statistics, and
    the viewer toolbar (Streamlit's Deploy, rerun and clear-cache items are for developers;
    set at start, since ``st.set_option`` takes effect only on a rerun)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "dashboard" / "streamlit_app.py"),
        "--server.headless", "true", "--server.address", host,
        "--server.port", str(port), "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip


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
        raise fail(str(exc)) from None
    if problem:
        raise fail(f"not starting the dashboard: {problem}")
    env = {**os.environ, "TRAPFLOW_WAREHOUSE": str(settings.warehouse_path)}
    argv = streamlit_command(host, port)
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
        raise fail(str(exc)) from None
    console.print(f"{'added' if is_new else 'updated'} {name} ({role}) in {path}")


@users_app.command("remove")
def dashboard_users_remove(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Remove a user (their open sessions end at the next click)."""
    from flows.access import signin as _access

    path = _access.users_path(load_settings())
    try:
        removed = _access.remove_user(path, name)
    except _access.AccessError as exc:
        raise fail(str(exc)) from None
    if not removed:
        raise fail(f"no user {name!r} in {path}: see `trapflow dashboard users list`")
    console.print(f"removed {name} from {path}")


@users_app.command("list")
def dashboard_users_list() -> None:
    """The users who may sign in with a password, and their roles (never their passwords)."""
    from flows.access import signin as _access

    path = _access.users_path(load_settings())
    try:
        users = _access.load_users(path)
    except _access.AccessError as exc:
        raise fail(str(exc)) from None
    table = Table("user", "role")
    for user in users.values():
        table.add_row(user.name, user.role)
    console.print(table)
    console.print(f"{len(users)} users in {path}")
