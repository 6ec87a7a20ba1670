"""The edge modules run on the edge install: no Prefect, dbt, DuckDB, Streamlit (or pydantic)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("prefect", "dbt", "duckdb", "streamlit", "pydantic", "pyarrow", "apprise")


def test_edge_imports_nothing_of_the_central_stack() -> None:
    code = (
        "import json, sys\n"
        "import flows.edge.cli, flows.edge.run, flows.edge.scan, flows.edge.targets\n"
        "import flows.edge.keys, flows.edge.queue, flows.edge.settings\n"
        "flows.edge.settings.EdgeSettings  # noqa\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(out.stdout))
    assert not loaded & set(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
    assert {"onnxruntime", "numpy", "PIL"} <= loaded
