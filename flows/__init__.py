"""trapflow's orchestration: Prefect flows, thin tasks, and the plain functions they call.

Telemetry is switched off here, before Prefect, dbt or onnxruntime can be imported by
anything in this package (see ../shared/docs/stack-notes.md §0). A user's own value wins.
"""

import os

for _key, _value in {
    "DO_NOT_TRACK": "1",  # Prefect client analytics
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # Prefect server heartbeat
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",  # dbt snowplow
    "ORT_DISABLE_TELEMETRY": "1",  # onnxruntime 1DS, must be set before import
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",  # cold start on 2 cores: 8-15 s
}.items():
    os.environ.setdefault(_key, _value)

# The local Prefect API must never go through a proxy (stack notes §2).
for _key in ("NO_PROXY", "no_proxy"):
    _hosts = [h for h in os.environ.get(_key, "").split(",") if h]
    os.environ[_key] = ",".join(dict.fromkeys([*_hosts, "127.0.0.1", "localhost"]))

# Prefect creates only the last folder of PREFECT_HOME; make the whole path.
if os.environ.get("PREFECT_HOME"):
    os.makedirs(os.path.expanduser(os.environ["PREFECT_HOME"]), exist_ok=True)
