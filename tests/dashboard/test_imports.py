"""The dashboard imports only public, Prefect-free modules of ``flows``: settings, sign-in
and privacy, the stable ids and the warehouse (plus the source reader for thumbnails).

A page that imported a flow, a task or the CLI would pull Prefect (and its start-up time,
its settings, its logging) into every Streamlit session.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboard"

#: Every flows module the dashboard may import. Adding one: make sure it is public (no
#: leading underscore), imports no Prefect, and say why here.
ALLOWED = {
    "flows.settings",  # the settings every page reads
    "flows.access",  # sign-in (flows.access.signin) and privacy (blur, generalise)
    "flows.access.signin",
    "flows.access.privacy",
    "flows.store",  # the storage interface and its modules
    "flows.store.ids",
    "flows.store.warehouse",
    "flows.pipeline.discovery",  # read_file: the original image behind a thumbnail
}


def _flows_imports(path: Path) -> set[str]:
    """The flows modules ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "flows")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "flows":
                continue
            for alias in node.names:
                # `from flows.store import ids` imports the module flows.store.ids
                sub = f"{node.module}.{alias.name}"
                is_module = (REPO / Path(*sub.split("."))).with_suffix(".py").exists()
                found.add(sub if is_module else node.module)
    return found


def _dashboard_imports() -> dict[str, set[str]]:
    return {
        str(p.relative_to(REPO)): _flows_imports(p)
        for p in sorted(DASHBOARD.rglob("*.py"))
        if _flows_imports(p)
    }


def test_the_dashboard_imports_only_the_pinned_flows_modules() -> None:
    imports = _dashboard_imports()
    assert imports, "the scan found no flows import at all: it is not working"
    unexpected = {f: sorted(m - ALLOWED) for f, m in imports.items() if m - ALLOWED}
    assert not unexpected, unexpected
    assert all(not part.startswith("_") for m in ALLOWED for part in m.split("."))


def test_importing_them_does_not_import_prefect() -> None:
    modules = sorted({m for ms in _dashboard_imports().values() for m in ms})
    code = (
        "import importlib, sys\n"
        "import dashboard.queries, dashboard.auth, dashboard.images, dashboard.charts\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')\n"
        "             or m.startswith(('flows.tasks', 'flows.cli')) or m == 'flows.ingest')\n"
        "print('BAD', bad)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "BAD []" in proc.stdout, proc.stdout[-2000:]
