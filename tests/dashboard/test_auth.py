"""Dashboard access: sign-in modes, viewer and ranger roles, and the CLI that refuses to expose
an open dashboard (dashboard/auth.py, flows/access/signin.py, docs/security.md "Access").

AppTest runs the real app on a small real DuckDB warehouse made here (a sensitive species at
one site, people on Human activity and Review), with a real users file of scrypt hashes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dashboard import auth
from flows.access import signin as _access
from flows.settings import load_settings
from flows.store.warehouse import open_file

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py")
EXACT = (-1.234567, 36.765432)  # the elephant site's camera
PASSWORDS = {"vera": "viewer-pass-1", "rita": "ranger-pass-1"}
EVERYWHERE = "0.0.0.0"  # noqa: S104  (the address the dashboard must refuse without sign-in)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The marts the pages read: an elephant at S1 (sensitive), impala at S2."""
    path = tmp_path_factory.mktemp("auth") / "w.duckdb"
    with open_file(path) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.fct_daily_population as select * from (values "
            "(date '2024-05-01', 'S1', 'animal', 'African elephant', 2), "
            "(date '2024-05-02', 'S2', 'animal', 'impala', 3)) "
            "as t(captured_on, site_id, category, label, events)"
        )
        con.execute(
            "create table marts.dim_deployments as select * from (values "
            "('S1-c1', 'S1', 'c1', date '2024-05-01', date '2024-05-09', ?, ?, 10, 8., 8., true), "
            "('S2-c1', 'S2', 'c1', date '2024-05-01', date '2024-05-09', 0.5, 35.5, 10, 8., 8., "
            "true)) as t(deployment_id, site_id, camera_id, deployment_start, deployment_end, "
            "latitude, longitude, images, deployed_days, trap_nights, is_inferred)",
            list(EXACT),
        )
    return path


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "dashboard_users"
    _access.add_user(path, "vera", "viewer", PASSWORDS["vera"])
    _access.add_user(path, "rita", "ranger", PASSWORDS["rita"])
    return path


@pytest.fixture()
def env(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("TRAPFLOW_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("TRAPFLOW_SENSITIVE_GRID_KM", "10")
    monkeypatch.setattr(auth, "THROTTLE", _access.Throttle(base_s=0.2))
    auth.st.cache_data.clear()
    yield monkeypatch
    auth.st.cache_data.clear()


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=30)


def _texts(at: AppTest) -> str:
    """Everything the run put on the page, as text (markdown, titles, notices, metrics)."""
    parts = [str(e.value) for kind in ("title", "markdown", "caption", "info", "warning", "error",
                                       "success", "subheader") for e in at.get(kind)]  # fmt: skip
    parts += [f"{m.label}={m.value}" for m in at.metric]
    return "\n".join(parts)


def _sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password)
    next(b for b in at.button if b.label == "Sign in").click()
    return at.run()


def _map_json(at: AppTest) -> str:
    """What the map sends to the browser (its layers' data included)."""
    return "".join(e.proto.json for e in at.get("deck_gl_json_chart"))


def _toggles(at: AppTest) -> set[str]:
    return {t.key for t in at.toggle if t.key}


def _sites_table(at: AppTest) -> pd.DataFrame:
    at.switch_page("app_pages/sites.py").run()
    assert not at.exception, at.exception
    table: pd.DataFrame = at.dataframe[-1].value
    return table.set_index("site_id")


def _password_mode(env: pytest.MonkeyPatch, users_file: Path) -> None:
    env.setenv("TRAPFLOW_DASHBOARD_AUTH", "password")
    env.setenv("TRAPFLOW_DASHBOARD_USERS_FILE", str(users_file))


# ---------------------------------------------------------------- password sign-in


def test_password_mode_shows_the_sign_in_form_and_nothing_else(env, users_file, warehouse):
    _password_mode(env, users_file)
    at = _app().run()
    assert not at.exception, at.exception
    assert at.text_input(key="sign_in_name") and at.text_input(key="sign_in_password")
    assert [t.value for t in at.title] == ["trapflow"]
    assert not at.dataframe and not at.metric and not at.toggle
    assert str(warehouse) not in _texts(at)  # no page ran (they all name the warehouse)
    at.switch_page("app_pages/sites.py").run()  # a deep link is no way around it
    assert not at.dataframe and "Sites" not in [t.value for t in at.title]
    assert not at.get("deck_gl_json_chart")


def test_a_wrong_password_is_refused_slowly(env, users_file):
    _password_mode(env, users_file)
    at = _app().run()
    started = time.monotonic()
    _sign_in(at, "rita", "not-her-password")
    took = time.monotonic() - started
    assert not at.exception, at.exception
    assert any("Wrong user name or password" in e.value for e in at.error), _texts(at)
    assert took >= 0.2  # the first failure costs base_s
    assert not at.dataframe and auth.IDENTITY_KEY not in at.session_state
    _sign_in(at, "nobody", PASSWORDS["rita"])  # an unknown name: the same answer
    assert any("Wrong user name or password" in e.value for e in at.error)


def test_a_viewer_never_gets_unblurred_people_or_exact_locations(env, users_file):
    _password_mode(env, users_file)
    at = _sign_in(_app().run(), "vera", PASSWORDS["vera"])
    assert not at.exception, at.exception
    assert at.title[0].value == "Population"
    assert "Signed in as **vera** (viewer)" in _texts(at)
    at.switch_page("app_pages/human_activity.py").run()
    assert "Latest images with people" in [s.value for s in at.subheader]  # where the toggle was
    assert "hum_blur" not in _toggles(at)
    at.switch_page("app_pages/review.py").run()
    assert at.slider(key="rv_min_box") and "rv_blur" not in _toggles(at)  # its sidebar neighbour
    table = _sites_table(at)
    assert "sites_exact" not in _toggles(at)
    assert bool(table.loc["S1", "is_generalised"])
    assert (
        table.loc["S1", "latitude"] != EXACT[0]
        and abs(table.loc["S1", "latitude"] - EXACT[0]) < 0.1
    )
    assert table.loc["S1", "coordinate_uncertainty_m"] == 7071
    assert "-1.2" in _map_json(at) and "1.234567" not in _map_json(at)
    assert table.loc["S2", "latitude"] == 0.5  # not sensitive: exact for everyone
    # sign out: back to the form
    at.button(key="sign_out").click().run()
    assert at.text_input(key="sign_in_name") and not at.dataframe


def test_a_ranger_may_unblur_people_and_show_exact_locations(env, users_file, tmp_path):
    users = tmp_path / "users"
    users.write_bytes(users_file.read_bytes())
    _password_mode(env, users)
    at = _sign_in(_app().run(), "RITA", PASSWORDS["rita"])  # names are case-insensitive
    assert not at.exception, at.exception
    assert "Signed in as **rita** (ranger)" in _texts(at)
    at.switch_page("app_pages/human_activity.py").run()
    assert "hum_blur" in _toggles(at) and at.toggle(key="hum_blur").value is True
    at.switch_page("app_pages/review.py").run()
    assert "rv_blur" in _toggles(at)
    table = _sites_table(at)
    assert bool(table.loc["S1", "is_generalised"])  # generalised until asked for
    at.toggle(key="sites_exact").set_value(True).run()
    table = at.dataframe[-1].value.set_index("site_id")
    assert (table.loc["S1", "latitude"], table.loc["S1", "longitude"]) == EXACT
    assert bool(table.loc["S1", "is_sensitive"]) and not bool(table.loc["S1", "is_generalised"])
    assert any("Exact coordinates of sensitive species" in w.value for w in at.warning)
    assert "1.234567" in _map_json(at)
    # removed from the users file: the open session ends at the next click
    _access.remove_user(users, "rita")
    at.run()
    assert at.text_input(key="sign_in_name") and not at.dataframe


# ---------------------------------------------------------------- proxy, oidc, none


@pytest.mark.parametrize(
    ("trust", "headers", "expected"),
    [
        ("true", [], "No X-Forwarded-User header"),
        ("false", [("X-Forwarded-User", "rita")], "TRUST_PROXY_HEADER"),
        ("true", [("X-Forwarded-User", "a"), ("x-forwarded-user", "rita")], "twice"),
        ("true", [("X-Forwarded-User", "vera")], "viewer"),
        ("true", [("X-Forwarded-User", "rita"), ("X-Trapflow-Role", "ranger")], "ranger"),
        ("true", [("X-Forwarded-User", "ranger@park.example")], "ranger"),  # ranger list
    ],
)
def test_proxy_mode_trusts_the_header_only_when_enabled(env, trust, headers, expected):
    env.setenv("TRAPFLOW_DASHBOARD_AUTH", "proxy")
    env.setenv("TRAPFLOW_DASHBOARD_TRUST_PROXY_HEADER", trust)
    env.setenv("TRAPFLOW_DASHBOARD_RANGER_EMAILS", '["@park.example"]')
    env.setattr(auth, "_request_headers", lambda: headers)
    at = _app().run()
    assert not at.exception, at.exception
    if expected in ("viewer", "ranger"):
        assert at.title[0].value == "Population"
        assert f"({expected})." in _texts(at)
        _sites_table(at)
        assert ("sites_exact" in _toggles(at)) == (expected == "ranger")
    else:
        assert any(expected in e.value for e in at.error), _texts(at)
        assert not at.dataframe and [t.value for t in at.title] == []


def test_oidc_roles_come_from_the_ranger_list(env):
    env.setenv("TRAPFLOW_DASHBOARD_AUTH", "oidc")
    env.setenv("TRAPFLOW_DASHBOARD_RANGER_EMAILS", '["rita@park.example"]')
    at = _app()
    at.user = {"is_logged_in": True, "email": "rita@park.example", "email_verified": True}
    at.run()
    assert not at.exception, at.exception
    assert "(ranger)." in _texts(at) and at.button(key="sign_out")
    at = _app()
    at.user = {"is_logged_in": True, "email": "someone@gmail.example"}
    at.run()
    assert "(viewer)." in _texts(at)
    at = _app()
    at.user = {"is_logged_in": False}
    at.run()  # not signed in: the login button, or why sign-in cannot work here
    assert not at.dataframe and not at.metric
    problem = _access.oidc_problem()
    if problem:
        assert any("Sign-in is not set up" in e.value for e in at.error), _texts(at)
    else:
        assert any(b.label.startswith("Sign in") for b in at.button)


def test_no_sign_in_is_refused_when_the_server_listens_beyond_loopback(env):
    from streamlit import config

    assert _access.is_loopback(config.get_option("server.address"))  # .streamlit/config.toml
    at = _app().run()
    assert at.title[0].value == "Population" and "ranger view" in _texts(at)
    saved = config.get_option("server.address")
    config.set_option("server.address", EVERYWHERE)  # e.g. streamlit run --server.address
    try:
        at = _app().run()
    finally:
        config.set_option("server.address", saved)
    assert any("without sign-in" in e.value for e in at.error), _texts(at)
    assert not at.dataframe and not at.metric


# ---------------------------------------------------------------- the CLI


def _cli(args: list[str], input_: str | None = None) -> tuple[int, str]:
    from flows.cli import app

    res = CliRunner().invoke(app, args, input=input_)
    return res.exit_code, re.sub(r"\s+", " ", res.output)


def test_the_cli_refuses_an_open_dashboard_beyond_loopback(monkeypatch, tmp_path):
    from flows.cli import commands as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAPFLOW_HOME", str(tmp_path / "home"))
    started: list[list[str]] = []
    monkeypatch.setattr(cli.subprocess, "call", lambda argv, env: started.append(argv) or 0)

    code, out = _cli(["dashboard", "--host", EVERYWHERE])
    assert code == 1 and "not starting the dashboard" in out and "without sign-in" in out
    assert "trapflow dashboard users add NAME --role ranger" in out and "docs/security.md" in out
    monkeypatch.setenv("TRAPFLOW_DASHBOARD_AUTH", "password")
    code, out = _cli(["dashboard", "--host", EVERYWHERE])
    assert code == 1 and "has no users" in out
    monkeypatch.setenv("TRAPFLOW_DASHBOARD_AUTH", "proxy")
    code, out = _cli(["dashboard"])
    assert code == 1 and "TRAPFLOW_DASHBOARD_TRUST_PROXY_HEADER=true" in out
    monkeypatch.setenv("TRAPFLOW_DASHBOARD_TRUST_PROXY_HEADER", "true")
    code, out = _cli(["dashboard", "--host", EVERYWHERE])
    assert code == 1 and "must listen on 127.0.0.1" in out
    assert not started

    # with a user, password mode starts on the address asked for
    monkeypatch.setenv("TRAPFLOW_DASHBOARD_AUTH", "password")
    code, out = _cli(["dashboard", "users", "add", "rita", "--role", "ranger"],
                     "Ranger pass 9\nRanger pass 9\n")  # fmt: skip
    assert code == 0, out
    code, out = _cli(["dashboard", "--host", EVERYWHERE, "--port", "8600"])
    assert code == 0, out
    assert started and started[0][started[0].index("--server.address") + 1] == EVERYWHERE
    code, out = _cli(["dashboard"])  # loopback and no sign-in is the default, and fine
    assert code == 0 and started[-1][started[-1].index("--server.address") + 1] == "127.0.0.1"


def test_cli_users_add_list_remove_never_store_the_password(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAPFLOW_HOME", str(tmp_path / "home"))
    path = _access.users_path(load_settings())
    code, out = _cli(["dashboard", "users", "add", "vera"], "Viewer pass 7\nViewer pass 7\n")
    assert code == 0 and "added vera (viewer)" in out, out
    code, out = _cli(["dashboard", "users", "add", "rita", "--role", "ranger"],
                     "Ranger pass 9\nRanger pass 9\n")  # fmt: skip
    assert code == 0, out
    text = path.read_text()
    assert "Viewer pass 7" not in text and "Ranger pass 9" not in text
    assert (path.stat().st_mode & 0o777) == 0o600
    users = _access.load_users(path)
    assert _access.authenticate(users, "vera", "Viewer pass 7") == users["vera"]
    assert users["rita"].role == "ranger"
    code, out = _cli(["dashboard", "users", "list"])
    assert code == 0 and "vera" in out and "ranger" in out and "scrypt" not in out
    assert "Viewer pass 7" not in out

    code, out = _cli(["dashboard", "users", "add", "x", "--role", "admin"])
    assert code == 1 and "not one of viewer, ranger" in out
    code, out = _cli(["dashboard", "users", "add", "x"], "short\nshort\n")
    assert code == 1 and "at least 8 characters" in out
    code, out = _cli(["dashboard", "users", "add", "a:b"])
    assert code == 1 and "not allowed" in out
    code, out = _cli(["dashboard", "users", "remove", "vera"])
    assert code == 0 and "vera" not in _access.load_users(path)
    code, out = _cli(["dashboard", "users", "remove", "vera"])
    assert code == 1 and "no user 'vera'" in out


# ---------------------------------------------------------------- the plain functions


def test_hashes_are_salted_and_checked():
    first, second = _access.hash_password("s3cret pw"), _access.hash_password("s3cret pw")
    assert first != second and "s3cret" not in first  # a fresh salt each time
    assert first.startswith("scrypt$32768$8$1$")
    assert _access.verify_password("s3cret pw", first) and _access.verify_password(
        "s3cret pw", second
    )
    assert not _access.verify_password("s3cret pW", first)
    assert not _access.verify_password("s3cret pw", first.replace("scrypt", "md5"))
    assert not _access.verify_password("s3cret pw", "scrypt$1073741824$8$1$AA==$AA==")  # cost bomb
    assert not _access.verify_password("s3cret pw", "garbage")


def test_the_users_file_is_checked_line_by_line(tmp_path):
    path = tmp_path / "users"
    assert _access.load_users(path) == {}
    path.write_text("# comment\n\nrita:ranger:scrypt$x\nbob:admin:scrypt$x\n")
    with pytest.raises(_access.AccessError, match=r"users:4: role 'admin'"):
        _access.load_users(path)
    path.write_text("rita ranger\n")
    with pytest.raises(_access.AccessError, match="name:role:hash"):
        _access.load_users(path)


def test_failed_sign_ins_get_slower_per_name_and_recover():
    now = [0.0]
    throttle = _access.Throttle(base_s=1.0, max_s=8.0, window_s=60.0, clock=lambda: now[0])
    assert [throttle.fail("Rita") for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert throttle.fail("vera") == 1.0  # per name
    now[0] = 61.0
    assert throttle.fail("rita") == 1.0  # old failures expire
    throttle.fail("rita")
    throttle.succeed("RITA")
    assert throttle.fail("rita") == 1.0


def test_loopback_and_roles():
    for host in ("127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]", "unix:///run/tf.sock"):
        assert _access.is_loopback(host), host
    for host in (EVERYWHERE, "::", "", None, "192.168.1.5", "example.org"):
        assert not _access.is_loopback(host), host
    rangers = ["rita@park.example", "@rangers.example"]
    assert _access.role_for("Rita@Park.example", rangers) == "ranger"
    assert _access.role_for("sam@rangers.example", rangers) == "ranger"
    assert _access.role_for("sam@evilrangers.example", rangers) == "viewer"
    assert _access.role_for(None, rangers) == "viewer"
    unverified = {"is_logged_in": True, "email": "rita@park.example", "email_verified": False}
    found = _access.oidc_identity(unverified, rangers)
    assert found is not None and found.role == "viewer"
    assert _access.oidc_identity({"email": "rita@park.example"}, rangers) is None
    garbled = [("X-Forwarded-User", "x"), ("X-Trapflow-Role", "admin")]
    found = _access.proxy_identity(garbled, [], trusted=True)
    assert found is not None and found.role == "viewer"
