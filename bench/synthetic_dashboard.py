"""How long each dashboard page takes on a large warehouse (>= 1M detections, marts built).

    .venv/bin/python bench/synthetic_warehouse.py --detections 1000000 --out /tmp/s/synthetic.duckdb
    (then build its marts: see bench/incremental_build.py, or `trapflow marts --warehouse ...`)
    .venv/bin/python bench/synthetic_dashboard.py /tmp/s/synthetic.duckdb

Renders every page with Streamlit's AppTest (the whole script: queries, charts, elements), once
with empty caches ("cold": every query reads the file) and once more ("warm": cached by their
arguments). The first render of the session also imports Streamlit, altair and pydeck; it is
done once on an empty warehouse first so it is not counted. Prints one JSON line, seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from flows.store.warehouse import open_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "streamlit_app.py")
PAGES = ["population", "sites", "human_activity", "review", "health"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="cold renders per page (median)")
    args = parser.parse_args()

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["TRAPFLOW_WAREHOUSE"] = str(Path(args.warehouse).absolute())
    warm_up = AppTest.from_file(APP, default_timeout=300)
    warm_up.run()
    with open_file(args.warehouse, read_only=True) as con:
        sizes = {
            t: con.execute(f"select count(*) from {t}").fetchone()[0]  # type: ignore[index]
            for t in ("raw.detections", "marts.dim_media", "marts.fct_events",
                      "marts.fct_population_variance")
        }  # fmt: skip
    out: dict[str, object] = {"rows": sizes}
    for page in PAGES:
        cold = []
        for _ in range(args.repeat):
            st.cache_data.clear()
            at = AppTest.from_file(APP, default_timeout=300)
            at.run()  # the default page; switch, then time the page alone
            if page != PAGES[0]:
                st.cache_data.clear()
                t0 = time.perf_counter()
                at.switch_page(f"app_pages/{page}.py").run()
            else:
                st.cache_data.clear()
                t0 = time.perf_counter()
                at.run()
            cold.append(time.perf_counter() - t0)
            if at.exception:
                raise SystemExit(f"{page}: {at.exception}")
        t0 = time.perf_counter()
        at.run()
        warm = time.perf_counter() - t0
        out[page] = {"cold_s": round(sorted(cold)[len(cold) // 2], 3), "warm_s": round(warm, 3)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
