"""``trapflow edge``: the edge command of ``flows/edge/cli.py`` on the main app (the edge
install runs it as ``trapflow-edge``, which imports no Prefect)."""

from __future__ import annotations

from flows.cli._app import app
from flows.edge.cli import edge

app.command("edge")(edge)
