"""``trapflow``: the command line, one module per group of commands.

trapflow run --source DIR --once      process everything new under DIR, then exit
trapflow serve --source DIR --interval 60                        (flows/cli/run.py)
trapflow listen [--replay-dead]                                  (flows/cli/listen.py)
trapflow marts | summary | config                                (flows/cli/warehouse.py)
trapflow dashboard [users add | remove | list]                   (flows/cli/dashboard.py)
trapflow annotate CLIP | train --data DIR                        (flows/cli/media.py)
trapflow models list | pull | verify                             (flows/cli/models.py)
trapflow alerts test | list | deliver                            (flows/cli/alerts.py)
trapflow export mdjson | camtrapdp | csv | images; import mdjson | camtrapdp DIR
                                                                 (flows/cli/formats.py)
trapflow import labels CSV | labels conflicts | relabel          (flows/cli/labels.py)
trapflow train-now | embed                                       (flows/cli/training.py)
trapflow import stations CSV | timeshifts CSV                    (flows/cli/stations.py)
trapflow edge --card DIR --upload URL [--once]; import edge-manifests  (flows/cli/edge.py)

The app, its options, consoles and error policy are in flows/cli/_app.py; the Prefect
servers it starts in flows/cli/_server.py; the checks before a run in flows/cli/_preflight.py.
"""

# isort: skip_file
from __future__ import annotations

import subprocess  # noqa: F401  (tests patch subprocess.call through this module)

# Importing a command module registers its commands on the app, in this order.
from flows.cli import run as _run  # noqa: F401
from flows.cli import listen as _listen  # noqa: F401
from flows.cli import warehouse as _warehouse  # noqa: F401
from flows.cli import dashboard as _dashboard  # noqa: F401
from flows.cli import media as _media  # noqa: F401
from flows.cli import models as _models  # noqa: F401
from flows.cli import alerts as _alerts  # noqa: F401
from flows.cli import formats as _formats  # noqa: F401
from flows.cli import labels as _labels  # noqa: F401
from flows.cli import training as _training  # noqa: F401
from flows.cli import stations as _stations  # noqa: F401
from flows.cli import edge as _edge  # noqa: F401
from flows.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
