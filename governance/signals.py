"""Gate signals: what a model version did in a window of served traffic, each with its sample size.

A signal is a number measured from the platform database (prediction log, outcomes, recommendations) or from
a drift report, together with the sample it rests on. A value of None means it could not be computed (the
note says why); a gate condition fails on it. A sample below the condition's ``min_sample`` makes it pending
(labels not matured, too few decisions): the gate holds, it never passes on too little evidence.

Comparisons with the champion are paired: in shadow every logged request carries both outputs, in approval
the champion is scored inline on the requests the challenger answers, so both are judged on the same
requests and the same outcomes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score
from sqlalchemy import and_, or_, select

from governance.phase_policy import Phase
from mesops import database
from mesops.serving_tables import Outcome, PredictionLogEntry, Recommendation

# The output key each family's realized accuracy and drift read.
PREDICTION_KEY = {"failure": "probability", "yield": "yield_fraction", "consumption": "total_kwh"}
DECIDED = ("ACCEPTED", "REJECTED", "MODIFIED")
NOT_A_SIGNAL_OF = "not a signal of the {family} forecaster"  # the note of another family's realized signal
DRIFT_SIGNALS = {"drift.share", "drift.prediction", "drift.severity"}
WILSON_Z = 1.959964  # 95 % two-sided


@dataclass(frozen=True)
class Subject:
    """Whose signals: a model version in a phase (or the champion alone), over a window of served traffic."""

    model_name: str
    family: str  # failure, yield or consumption
    version: str
    champion_version: str | None  # the version compared against (None for the champion's own gate)
    phase: Phase | None  # None: the champion, no challenger
    phase_started: datetime
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class Measurement:
    """A signal's value (None: could not compute), the sample it rests on, and a note for reviewers."""

    value: float | None
    sample: int
    note: str = ""


@dataclass(frozen=True)
class Acceptance:
    """accepted / decided with its Wilson interval."""

    accepted: int
    decided: int
    rate: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class DriftSummary:
    """What the gates read of a drift report (governance.drift.DriftResult.summary)."""

    share_drifted: float
    prediction_drifted: bool
    severity: float  # the worst feature's drift distance over its threshold (see drift.DriftResult.severity)
    worst_feature: str | None
    rows: int  # served rows compared with the reference


DriftSource = Callable[[], DriftSummary]


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (None without trials): honest at small n, unlike the normal one."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def acceptance(accepted: int, decided: int) -> Acceptance:
    """The acceptance rate of some decisions, with its interval."""
    interval = wilson_interval(accepted, decided)
    rate = accepted / decided if decided else None
    lower, upper = interval if interval else (None, None)
    return Acceptance(accepted, decided, rate, lower, upper)


def would_disagree(champion: dict[str, Any], challenger: dict[str, Any]) -> bool:
    """Would two outputs have led to different recommendations? (alarm for failure, else a > 5 % relative gap)."""
    if "alarm" in champion and "alarm" in challenger:
        return bool(champion["alarm"]) != bool(challenger["alarm"])
    for key in ("yield_fraction", "total_kwh"):
        if key in champion and key in challenger:
            a, b = float(champion[key]), float(challenger[key])
            return abs(a - b) > 0.05 * max(abs(a), abs(b), 1e-9)
    return False


# --- reading the platform database ------------------------------------------------------------------------
def served_rows(db_url: str, subject: Subject) -> pd.DataFrame:
    """Log rows of the subject's window where its version produced an output (see ``served_outputs``)."""
    return served_outputs(
        db_url, subject.model_name, subject.version, subject.window_start, subject.window_end
    )


def served_outputs(
    db_url: str, model_name: str, version: str, since: datetime, until: datetime
) -> pd.DataFrame:
    """Log rows of [since, until) where ``version`` produced (or should have produced) an output, with outcomes.

    The one reader of served traffic for monitoring (signals and drift). Those rows are the ones the version
    answered and the ones where it was the challenger scored in shadow. Columns: created_at, latency_ms,
    features, own (the version's output, None if its scoring failed), champion (the champion's output on the
    same request, when the version is the challenger), actual, observed_at, entity_id.
    """
    log = PredictionLogEntry
    version = str(version)
    produced = or_(
        log.answered_version == version,
        and_(log.challenger_version == version, log.challenger_output.is_not(None)),
    )
    query = (
        select(
            log.created_at,
            log.latency_ms,
            log.features,
            log.answered_by,
            log.answered_version,
            log.champion_version,
            log.challenger_version,
            log.champion_output,
            log.challenger_output,
            log.entity_id,
            Outcome.actual,
            Outcome.observed_at,
        )
        .outerjoin(
            Outcome, and_(Outcome.model_name == log.model_name, Outcome.correlation_id == log.correlation_id)
        )
        .where(
            log.model_name == model_name,
            log.created_at >= _utc_bound(since, "since"),
            log.created_at < _utc_bound(until, "until"),
            produced,
        )
        .order_by(log.created_at, log.id)
    )
    with database.session_scope(db_url) as session:
        rows = [_served(row, version) for row in session.execute(query)]
    return pd.DataFrame(rows, columns=list(SERVED_COLUMNS))


SERVED_COLUMNS = (
    "created_at",
    "latency_ms",
    "features",
    "own",
    "champion",
    "actual",
    "observed_at",
    "entity_id",
)


def _utc_bound(moment: datetime, field: str) -> datetime:
    """A window bound in UTC (SQLite compares stored UTC times as text: the bound must be UTC too)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{field}: must be timezone-aware (UTC), got {moment.isoformat()}")
    return moment.astimezone(UTC)


def _served(row: Any, version: str) -> tuple[Any, ...]:
    if row.challenger_version == version:  # shadow-scored, or answered with the champion scored inline
        own, other = row.challenger_output, row.champion_output
    else:  # the version answered as champion (its own gate): nothing to compare with
        own, other = row.champion_output, None
    if isinstance(own, dict) and "error" in own:
        own = None
    if isinstance(other, dict) and "error" in other:
        other = None
    return (
        row.created_at,
        row.latency_ms,
        row.features,
        own,
        other,
        row.actual,
        row.observed_at,
        row.entity_id,
    )


def decisions(db_url: str, subject: Subject) -> pd.DataFrame:
    """Recommendations of the version in its phase and window: status, line, reason code, decided_at."""
    rec = Recommendation
    phase = "none" if subject.phase is None else subject.phase.value
    query = select(rec.status, rec.line_id, rec.reason_code, rec.created_at, rec.decided_at).where(
        rec.model_name == subject.model_name,
        rec.model_version == subject.version,
        rec.phase == phase,
        rec.created_at >= subject.window_start,
        rec.created_at < subject.window_end,
    )
    with database.session_scope(db_url) as session:
        rows = [tuple(r) for r in session.execute(query)]
    return pd.DataFrame(rows, columns=["status", "line_id", "reason_code", "created_at", "decided_at"])


def naive_actuals(
    db_url: str, model_name: str, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], float]:
    """Seasonal naive for consumption: the actual of the same meter 7 days earlier, per (meter, ISO day)."""
    wanted = set(keys)
    if not wanted:
        return {}
    query = select(Outcome.entity_id, Outcome.observed_at, Outcome.actual).where(
        Outcome.model_name == model_name
    )
    found: dict[tuple[str, str], float] = {}
    with database.session_scope(db_url) as session:
        for entity, observed, actual in session.execute(query):
            key = (entity, (pd.Timestamp(observed).date() + timedelta(days=7)).isoformat())
            if key in wanted:
                found[key] = float(actual)
    return found


# --- the signals ---------------------------------------------------------------------------------------------
def measure(
    db_url: str, subject: Subject, names: Iterable[str], drift: DriftSource | None = None
) -> dict[str, Measurement]:
    """Every named signal for the subject (see governance.phase_policy.SIGNALS)."""
    wanted = set(names)
    served = served_rows(db_url, subject)
    out: dict[str, Measurement] = {}
    produced = served[served["own"].notna()]
    if "predictions" in wanted:
        out["predictions"] = Measurement(float(len(produced)), len(produced))
    if "days_in_phase" in wanted:
        days = (subject.window_end - subject.phase_started) / timedelta(days=1)
        out["days_in_phase"] = Measurement(
            round(days, 3), 1, f"since {subject.phase_started:%Y-%m-%d %H:%M} UTC"
        )
    if wanted & {"latency.p99_ms", "errors.rate", "shadow.disagreement"}:
        out |= _health(served)
    realized = {n for n in wanted if n.startswith("realized.")}
    if realized:
        out |= _realized(db_url, subject, served, realized)
    if wanted & {"acceptance.rate", "acceptance.lower_bound"}:
        out |= _acceptance(db_url, subject)
    if wanted & DRIFT_SIGNALS:
        out |= _drift(drift, len(produced))
    return {name: out.get(name, Measurement(None, 0, "not measured")) for name in wanted}


def _health(served: pd.DataFrame) -> dict[str, Measurement]:
    n = len(served)
    latency = served["latency_ms"].astype(float)
    errors = int(served["own"].isna().sum())
    paired = served[served["own"].notna() & served["champion"].notna()]
    disagreements = sum(would_disagree(c, o) for c, o in zip(paired["champion"], paired["own"], strict=True))
    return {
        "latency.p99_ms": Measurement(float(np.percentile(latency, 99)) if n else None, n),
        "errors.rate": Measurement(errors / n if n else None, n, f"{errors} of {n} scorings failed"),
        "shadow.disagreement": Measurement(
            disagreements / len(paired) if len(paired) else None,
            len(paired),
            f"{disagreements} of {len(paired)} paired requests",
        ),
    }


def _acceptance(db_url: str, subject: Subject) -> dict[str, Measurement]:
    frame = decisions(db_url, subject)
    decided = frame[frame["status"].isin(DECIDED)]
    result = acceptance(int((decided["status"] == "ACCEPTED").sum()), len(decided))
    note = f"{result.accepted} accepted of {result.decided} decided"
    return {
        "acceptance.rate": Measurement(result.rate, result.decided, note),
        "acceptance.lower_bound": Measurement(result.lower, result.decided, note + " (Wilson 95 %)"),
    }


def _drift(drift: DriftSource | None, produced: int) -> dict[str, Measurement]:
    if drift is None:
        return dict.fromkeys(DRIFT_SIGNALS, Measurement(None, produced, "no drift source configured"))
    try:
        summary = drift()
    except Exception as err:  # could not compute: the condition fails, the note says why
        return dict.fromkeys(DRIFT_SIGNALS, Measurement(None, produced, f"{type(err).__name__}: {err}"))
    worst = f"worst: {summary.worst_feature}" if summary.worst_feature else "no feature tested by a distance"
    return {
        "drift.share": Measurement(summary.share_drifted, summary.rows),
        "drift.prediction": Measurement(1.0 if summary.prediction_drifted else 0.0, summary.rows),
        "drift.severity": Measurement(summary.severity, summary.rows, worst),
    }


# --- realized accuracy ---------------------------------------------------------------------------------------
def _realized(db_url: str, subject: Subject, served: pd.DataFrame, names: set[str]) -> dict[str, Measurement]:
    resolved = served[served["actual"].notna() & served["own"].notna()]
    if subject.family == "failure":
        found = _realized_failure(resolved)
    elif subject.family == "yield":
        found = _realized_yield(resolved)
    else:
        found = _realized_consumption(db_url, subject.model_name, resolved)
    missing = Measurement(None, 0, NOT_A_SIGNAL_OF.format(family=subject.family))
    return {name: found.get(name, missing) for name in names}


def _values(outputs: pd.Series, key: str) -> np.ndarray:
    return np.array([float(o[key]) for o in outputs], dtype=float)


def _realized_failure(resolved: pd.DataFrame) -> dict[str, Measurement]:
    y = (resolved["actual"].astype(float) >= 0.5).to_numpy()
    positives = int(y.sum())
    p = _values(resolved["own"], "probability")
    alarm = np.array([bool(o["alarm"]) for o in resolved["own"]])
    labels = f"{len(y)} outcomes, {positives} failures"
    out = {
        # PR-AUC and recall rest on the failures seen: their sample is the number of positives
        "realized.pr_auc": Measurement(
            float(average_precision_score(y, p)) if positives else None, positives, labels
        ),
        "realized.recall": Measurement(float(alarm[y].mean()) if positives else None, positives, labels),
        "realized.brier": Measurement(float(np.mean((p - y) ** 2)) if len(y) else None, len(y), labels),
    }
    paired = resolved["champion"].notna().to_numpy()
    yp, pp, cp = y[paired], p[paired], _values(resolved["champion"][paired], "probability")
    pos = int(yp.sum())
    champion_alarm = np.array([bool(o["alarm"]) for o in resolved["champion"][paired]])
    paired_note = f"{len(yp)} paired outcomes, {pos} failures"
    out["realized.pr_auc.gain"] = Measurement(
        float(average_precision_score(yp, pp) - average_precision_score(yp, cp)) if pos else None,
        pos,
        paired_note,
    )
    champion_pr_auc = float(average_precision_score(yp, cp)) if pos else 0.0
    out["realized.pr_auc.ratio"] = Measurement(
        float(average_precision_score(yp, pp)) / champion_pr_auc if champion_pr_auc > 0 else None,
        pos,
        paired_note,
    )
    out["realized.recall.gain"] = Measurement(
        float(alarm[paired][yp].mean() - champion_alarm[yp].mean()) if pos else None, pos, paired_note
    )
    out["realized.brier.gain"] = Measurement(
        float(np.mean((cp - yp) ** 2) - np.mean((pp - yp) ** 2)) if len(yp) else None, len(yp), paired_note
    )
    return out


def _relative_gain(own_error: float, champion_error: float) -> float | None:
    return None if champion_error <= 0 else 1.0 - own_error / champion_error


def _realized_yield(resolved: pd.DataFrame) -> dict[str, Measurement]:
    planned = np.array([float((f or {}).get("planned_qty") or np.nan) for f in resolved["features"]])
    usable = np.isfinite(planned) & (planned > 0)
    frame = resolved[usable]
    actual = frame["actual"].astype(float).to_numpy() / planned[usable]
    own = _values(frame["own"], "yield_fraction")
    n = len(frame)
    out = {"realized.mae": Measurement(float(np.mean(np.abs(own - actual))) if n else None, n)}
    paired = frame["champion"].notna().to_numpy()
    if paired.any():
        champion = _values(frame["champion"][paired], "yield_fraction")
        own_mae = float(np.mean(np.abs(own[paired] - actual[paired])))
        champion_mae = float(np.mean(np.abs(champion - actual[paired])))
        gain = _relative_gain(own_mae, champion_mae)
        note = f"MAE {own_mae:.4f} vs champion {champion_mae:.4f}"
        out["realized.mae.gain"] = Measurement(gain, int(paired.sum()), note)
    else:
        out["realized.mae.gain"] = Measurement(None, 0, "no paired outcomes")
    return out


def _realized_consumption(db_url: str, model_name: str, resolved: pd.DataFrame) -> dict[str, Measurement]:
    actual = resolved["actual"].astype(float).to_numpy()
    own = _values(resolved["own"], "total_kwh")
    lower, upper = _values(resolved["own"], "lower_kwh"), _values(resolved["own"], "upper_kwh")
    n = len(resolved)
    out = {
        "realized.mae": Measurement(float(np.mean(np.abs(own - actual))) if n else None, n),
        "realized.coverage": Measurement(
            float(np.mean((actual >= lower) & (actual <= upper))) if n else None, n
        ),
    }
    days = [str((f or {}).get("day", "")) for f in resolved["features"]]
    keys = list(zip(resolved["entity_id"].astype(str), days, strict=True))
    naive = naive_actuals(db_url, model_name, keys)
    has_naive = np.array([k in naive for k in keys], dtype=bool)
    if has_naive.any():
        naive_values = np.array([naive[k] for k, ok in zip(keys, has_naive, strict=True) if ok])
        own_mae = float(np.mean(np.abs(own[has_naive] - actual[has_naive])))
        naive_mae = float(np.mean(np.abs(naive_values - actual[has_naive])))
        ratio = own_mae / naive_mae if naive_mae > 0 else None
        note = f"MAE {own_mae:.1f} kWh vs seasonal naive {naive_mae:.1f} kWh"
        out["realized.mae_vs_naive"] = Measurement(ratio, int(has_naive.sum()), note)
    else:
        out["realized.mae_vs_naive"] = Measurement(None, 0, "no actual of the same meter 7 days earlier yet")
    paired = resolved["champion"].notna().to_numpy()
    if paired.any():
        champion = _values(resolved["champion"][paired], "total_kwh")
        own_mae = float(np.mean(np.abs(own[paired] - actual[paired])))
        champion_mae = float(np.mean(np.abs(champion - actual[paired])))
        note = f"MAE {own_mae:.1f} vs champion {champion_mae:.1f} kWh"
        out["realized.mae.gain"] = Measurement(_relative_gain(own_mae, champion_mae), int(paired.sum()), note)
    else:
        out["realized.mae.gain"] = Measurement(None, 0, "no paired outcomes")
    return out
