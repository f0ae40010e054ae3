"""Outcome history as of a moment: what finished orders had yielded, by product, line and material lot.

An order's outcome (good and started quantity) becomes known when it ends (``actual_end``). Every function here
answers "what was known strictly before time t" with prefix sums and ``merge_asof(allow_exact_matches=False)``, so
an order can never see its own outcome (it ends after its release) nor any later one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

KNOWN_OUTCOME_STATUSES = ("COMPLETED", "CLOSED")


def as_float(series: pd.Series) -> pd.Series:
    """Nullable integers (Int64) or floats as float64 with NaN for nulls."""
    return pd.to_numeric(series, errors="raise").astype("float64")


def known_outcomes(orders: pd.DataFrame) -> pd.DataFrame:
    """Orders with a known yield: COMPLETED/CLOSED, started_qty > 0, good_qty and actual_end present.

    Adds ``yield_fraction`` = good_qty / started_qty (float) and keeps every original column.
    """
    started = as_float(orders["started_qty"])
    good = as_float(orders["good_qty"])
    ended = pd.to_datetime(orders["actual_end"])
    keep = orders["status"].isin(KNOWN_OUTCOME_STATUSES) & (started > 0) & good.notna() & ended.notna()
    out = orders.loc[keep].copy()
    out["actual_end"] = ended[keep]
    out["yield_fraction"] = (good[keep] / started[keep]).to_numpy()
    return out


def sums_before(
    events: pd.DataFrame,
    key: str,
    event_time: str,
    values: Sequence[str],
    queries: pd.DataFrame,
    query_time: str,
) -> pd.DataFrame:
    """Per query row: the sums of ``values`` over events of the same ``key`` strictly before its query time.

    Returns a frame aligned with ``queries`` (same index) holding one column per value plus ``n`` (event count);
    zeros where no event precedes the query.
    """
    columns = [*values, "n"]
    if queries.empty:
        return pd.DataFrame(0.0, index=queries.index, columns=columns)
    ev = events.loc[events[event_time].notna(), [key, event_time, *values]].copy()
    ev["n"] = 1.0
    ev = ev.sort_values(event_time, kind="stable")
    ev[columns] = ev.groupby(key, sort=False)[columns].cumsum()
    left = pd.DataFrame(
        {key: queries[key].to_numpy(), "_at": pd.to_datetime(queries[query_time]).to_numpy()},
    )
    left["_row"] = np.arange(len(left))
    has_time = left["_at"].notna()
    merged = pd.merge_asof(
        left[has_time].sort_values("_at", kind="stable"),
        ev.rename(columns={event_time: "_event_at"}),
        left_on="_at",
        right_on="_event_at",
        by=key,
        allow_exact_matches=False,
        direction="backward",
    )
    out = np.zeros((len(left), len(columns)))
    out[merged["_row"].to_numpy()] = merged[columns].fillna(0.0).to_numpy(dtype="float64")
    return pd.DataFrame(out, index=queries.index, columns=columns)


def sums_in_window(
    events: pd.DataFrame,
    key: str,
    event_time: str,
    values: Sequence[str],
    queries: pd.DataFrame,
    query_time: str,
    window: pd.Timedelta,
) -> pd.DataFrame:
    """Like :func:`sums_before`, restricted to events in [t - window, t)."""
    shifted = queries.assign(_from=pd.to_datetime(queries[query_time]) - window)
    upto = sums_before(events, key, event_time, values, queries, query_time)
    before = sums_before(events, key, event_time, values, shifted, "_from")
    return upto - before


def shrunk_mean(total: pd.Series, count: pd.Series, prior: pd.Series | float, strength: float) -> pd.Series:
    """(total + strength x prior) / (count + strength): a mean pulled toward its prior when history is thin."""
    return (total + strength * prior) / (count + strength)


def product_yield_as_of(
    finished: pd.DataFrame, queries: pd.DataFrame, query_time: str, prior_orders: float
) -> pd.DataFrame:
    """Per query row: the product's mean yield of orders finished before t, shrunk toward the plant mean then.

    ``finished`` comes from :func:`known_outcomes`; ``queries`` need ``product_id`` and ``query_time``.
    Returns columns ``product_yield_mean`` (NaN while nothing has finished anywhere) and ``product_orders``.
    """
    one_key = finished.assign(_all="all")
    plant = sums_before(
        one_key, "_all", "actual_end", ["yield_fraction"], queries.assign(_all="all"), query_time
    )
    product = sums_before(finished, "product_id", "actual_end", ["yield_fraction"], queries, query_time)
    plant_mean = plant["yield_fraction"] / plant["n"].where(plant["n"] > 0)
    return pd.DataFrame(
        {
            "product_yield_mean": shrunk_mean(
                product["yield_fraction"], product["n"], plant_mean, prior_orders
            ),
            "product_orders": product["n"],
        },
        index=queries.index,
    )


def with_residuals(finished: pd.DataFrame, prior_orders: float) -> pd.DataFrame:
    """Finished orders with ``residual``: yield minus the product's mean as known when the order ended.

    The residual isolates what was special about an order (its lots, its machines' condition) from what its
    product always yields; it is known from ``actual_end`` on. Orders ending before any other has finished have
    no reference and get NaN (left out of every residual sum).
    """
    reference = product_yield_as_of(finished, finished, "actual_end", prior_orders)
    return finished.assign(residual=finished["yield_fraction"] - reference["product_yield_mean"])
