"""Percentile-bootstrap intervals of RAI per site x trend_period x category x label (a dbt
Python model; dbt-duckdb runs ``model(dbt, session)`` in the build's own process).

Within each group the units of ``int_rai_units`` (camera-days or deployments, zeros included)
are resampled with replacement ``bootstrap_replicates`` times; each replicate's RAI is
100 x Σevents / Σtrap-nights of the resampled units. Resampling n units with replacement is
drawing multinomial counts over the units, and units with the same (events, trap-nights) are
interchangeable, so a group is reduced to its distinct (events, trap-nights) values with their
multiplicities and one ``Generator.multinomial(n, p, size=replicates)`` call draws every
replicate at once (replicates x distinct values, not replicates x units; no loop per replicate).

Reproducible: a group's random stream is ``numpy.random.default_rng([bootstrap_seed,
hash(group key)])`` (blake2b of the key, not Python's salted ``hash``), and its distinct values
are sorted, so the result does not depend on row order, on other groups, or on the process.

- ``rai_lower``/``rai_upper``: the (1 - level)/2 and (1 + level)/2 quantiles of the replicates
  (numpy's default linear interpolation); where skew puts the point RAI outside them (possible
  with a handful of units) the bound is moved to the point, so lower <= rai <= upper always.
- ``rai_se``: the standard deviation of the replicates (ddof 1); null with one replicate.
  Replicates whose resampled units have no effort (only effort-0 units drawn) are left out.
  A group without events needs no draws: every replicate is 0 (lower = upper = se = 0).
- ``between_deployment_variance``: the sample variance (ddof 1) of per-deployment RAI over the
  group's deployments with effort (``n_deployments``); null with fewer than two (one
  deployment has no between-deployment variance, which is not the same as a variance of 0).

The vars reach a Python model through its config (``meta``, _intermediate__rai.yml).

Incremental by group: ``int_rai_unit_values`` (the units counted per group, deployment and
value) gives each group a ``group_digest`` of its rows and the bootstrap vars. The model keeps
the rows of the last build whose group and digest are still current and draws only the other
groups (a table rebuilt from them: dbt-duckdb's incremental Python models do not work with the
attached warehouse). A group's draws depend on nothing but its own rows, the vars and its key
(its own random stream), so a kept row is exact. ``--full-refresh`` empties the old table
first (pre-hook, _intermediate__rai.yml), so every group is drawn again.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

KEY = ("site_id", "period_key", "category", "label")
SCHEMA = pa.schema(
    [(k, pa.string()) for k in KEY]
    + [
        ("events", pa.int64()),
        ("trap_nights", pa.float64()),
        ("n_units", pa.int64()),
        ("rai", pa.float64()),
        ("rai_lower", pa.float64()),
        ("rai_upper", pa.float64()),
        ("rai_se", pa.float64()),
        ("between_deployment_variance", pa.float64()),
        ("n_deployments", pa.int64()),
        ("confidence_level", pa.float64()),
        ("replicates", pa.int64()),
        ("seed", pa.int64()),
        ("unit", pa.string()),
        ("group_digest", pa.uint64()),
    ]
)


def group_rng(seed: int, key: tuple[str, ...]) -> np.random.Generator:
    """The group's own random stream: the seed and a stable 64-bit hash of its key."""
    digest = hashlib.blake2b("\x1f".join(key).encode("utf-8"), digest_size=8).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "little")])


def bootstrap_group(
    events: np.ndarray,
    trap_nights: np.ndarray,
    counts: np.ndarray,
    *,
    replicates: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """RAI of each replicate (nan where the resample has no effort): n = Σcounts units drawn
    with replacement, as multinomial counts over the distinct (events, trap_nights) values."""
    n = int(counts.sum())
    if len(counts) == 1:  # every resample is the group itself
        total = float(trap_nights[0]) * n
        value = 100.0 * float(events[0]) * n / total if total > 0 else np.nan
        return np.full(replicates, value)
    drawn = rng.multinomial(n, counts / n, size=replicates)  # replicates x distinct values
    effort = drawn @ trap_nights
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(effort > 0, 100.0 * (drawn @ events) / effort, np.nan)


def bootstrap(
    columns: dict[str, np.ndarray], *, level: float, replicates: int, seed: int
) -> dict[str, list[Any]]:
    """Per group: rai, rai_lower, rai_upper, rai_se, n_units, events, trap_nights.

    ``columns``: the group key columns, ``events``, ``trap_nights`` and ``units`` (how many
    units have that value), one row per distinct value, sorted by key then value."""
    events = columns["events"].astype(np.float64)
    effort = columns["trap_nights"].astype(np.float64)
    units = columns["units"].astype(np.int64)
    change = np.ones(len(events), dtype=bool)  # a row whose key differs from the row before
    change[1:] = False
    for k in KEY:
        column = np.asarray(columns[k], dtype=object)
        change[1:] |= column[1:] != column[:-1]
    starts = np.flatnonzero(change).tolist()
    bounds = list(zip(starts, [*starts[1:], len(events)][: len(starts)], strict=True))
    keys = {lo: tuple(str(columns[k][lo]) for k in KEY) for lo in starts}
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    out: dict[str, list[Any]] = {
        name: []
        for name in (
            *KEY, "events", "trap_nights", "n_units", "rai", "rai_lower", "rai_upper", "rai_se"
        )
    }  # fmt: skip
    for lo, hi in bounds:
        e, t, c = events[lo:hi], effort[lo:hi], units[lo:hi]
        total_events, total_effort = float(e @ c), float(t @ c)
        if total_effort <= 0:
            continue  # no effort in the period: no RAI
        rai = 100.0 * total_events / total_effort
        if total_events == 0:  # every unit has effort and no event: every replicate is 0
            lower = upper = 0.0
            se = 0.0 if replicates > 1 else None
        else:
            reps = bootstrap_group(e, t, c, replicates=replicates, rng=group_rng(seed, keys[lo]))
            reps = reps[~np.isnan(reps)]
            lower, upper = np.quantile(reps, q) if len(reps) else (rai, rai)
            se = float(np.std(reps, ddof=1)) if len(reps) > 1 else None
        for name, value in zip(KEY, keys[lo], strict=True):
            out[name].append(value)
        out["events"].append(round(total_events))
        out["trap_nights"].append(total_effort)
        out["n_units"].append(int(c.sum()))
        out["rai"].append(rai)
        out["rai_lower"].append(min(float(lower), rai))
        out["rai_upper"].append(max(float(upper), rai))
        out["rai_se"].append(se)
    return out


def between_deployment(rows: list[tuple[Any, ...]]) -> dict[tuple[str, ...], tuple[Any, int]]:
    """Per group key: (sample variance of per-deployment RAI or None, deployments with effort).

    Exact sums (``math.fsum``) and ``statistics.variance`` (exact rational arithmetic) over
    rows sorted by key and deployment, so the figure does not depend on the order the engine
    scanned or aggregated rows in (a streaming ``var_samp`` differs in the last bit)."""
    sums: dict[tuple[str, ...], dict[str, tuple[list[float], list[float]]]] = {}
    for *key, deployment, events, trap_nights, units in rows:
        parts = sums.setdefault(tuple(str(k) for k in key), {}).setdefault(deployment, ([], []))
        parts[0].append(float(events) * units)
        parts[1].append(float(trap_nights) * units)
    out: dict[tuple[str, ...], tuple[Any, int]] = {}
    for key, deployments in sums.items():
        rai = [100.0 * math.fsum(e) / math.fsum(t) for e, t in deployments.values()]
        out[key] = (statistics.variance(rai) if len(rai) > 1 else None, len(rai))
    return out


def _setting(name: str, raw: Any, kind: type, check: Any, rule: str) -> Any:
    """A var from the model's meta (rendered as text), checked: one line naming the var."""
    try:
        value = kind(float(raw)) if kind is int and float(raw).is_integer() else kind(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or not check(value):
        raise ValueError(f"var {name} must be {rule}; got {raw!r}")
    return value


def model(dbt: Any, session: Any) -> pa.Table:
    dbt.config(materialized="table")
    level = _setting(
        "confidence_level", dbt.config.meta_get("confidence_level"), float,
        lambda v: 0 < v < 1, "> 0 and < 1",
    )  # fmt: skip
    replicates = _setting(
        "bootstrap_replicates", dbt.config.meta_get("bootstrap_replicates"), int,
        lambda v: v >= 1, "a whole number >= 1",
    )  # fmt: skip
    seed = _setting(
        "bootstrap_seed", dbt.config.meta_get("bootstrap_seed"), int,
        lambda v: v >= 0, "a whole number >= 0",
    )  # fmt: skip
    unit = _setting(
        "bootstrap_unit", dbt.config.meta_get("bootstrap_unit"), str,
        lambda v: v in ("camera_day", "deployment"), "'camera_day' or 'deployment'",
    )  # fmt: skip
    group_by = "site_id, period_key, category, label"
    current = dbt.ref("int_rai_unit_values")
    kept = _kept_groups(session, str(dbt.this), current)
    # the groups to draw, kept in memory for both the draws and the per-deployment spread
    counted = session.from_arrow(
        (current if kept is None else current.join(kept, list(KEY), how="anti")).to_arrow_table()
    )
    digests = {
        tuple(key): digest
        for *key, digest in counted.aggregate(
            f"{group_by}, any_value(group_digest)", group_by
        ).fetchall()
    }
    distinct = counted.aggregate(
        f"{group_by}, events, trap_nights, cast(sum(units) as bigint) as units",
        f"{group_by}, events, trap_nights",
    ).order(f"{group_by}, events, trap_nights")
    result = bootstrap(distinct.fetchnumpy(), level=level, replicates=replicates, seed=seed)

    by_key = between_deployment(
        counted.filter("trap_nights > 0")
        .project(f"{group_by}, deployment_id, events, trap_nights, units")
        .order(f"{group_by}, deployment_id, events, trap_nights")
        .fetchall()
    )
    keys = list(zip(*(result[k] for k in KEY), strict=True))
    result["between_deployment_variance"] = [by_key.get(k, (None, 0))[0] for k in keys]
    result["n_deployments"] = [by_key.get(k, (None, 0))[1] for k in keys]
    n = len(keys)
    result["confidence_level"] = [level] * n
    result["replicates"] = [replicates] * n
    result["seed"] = [seed] * n
    result["unit"] = [unit] * n
    result["group_digest"] = [digests[k] for k in keys]
    drawn = pa.Table.from_pydict({f.name: result[f.name] for f in SCHEMA}, schema=SCHEMA)
    return drawn if kept is None else pa.concat_tables([kept.to_arrow_table().cast(SCHEMA), drawn])


def _kept_groups(session: Any, this: str, current: Any) -> Any:
    """The last build's rows whose group and group_digest are current (None: no last build)."""
    try:
        stored = session.sql(f"select * from {this}")
    except duckdb.CatalogException:  # no table yet: the first build
        return None
    if "group_digest" not in stored.columns:
        return None  # built before groups had digests
    key = ", ".join(KEY)
    digests = current.aggregate(f"{key}, any_value(group_digest) as group_digest", key)
    return stored.join(digests, [*KEY, "group_digest"], how="semi").project(
        ", ".join(f.name for f in SCHEMA)
    )
