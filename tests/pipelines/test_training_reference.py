"""The drift reference of a trained forecaster: a seeded sample of its exact training rows, keyed like the
service's prediction log, with the prediction the service would report; it round-trips through registration."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from governance.drift import reference_features
from governance.lineage import reference_parquet
from governance.registry import Registry
from mesops import database
from models.consumption_features import ENERGY_READINGS, build_features
from pipelines.simulator import SimulationConfig, simulate
from pipelines.training import (
    REFERENCE_SEED,
    TRAINERS,
    Candidate,
    DatasetInput,
    Trained,
    reference_sample,
    register_candidate,
    save_candidate,
)
from serving import scoring
from serving.context import FeatureContext

TASKS = ("failure", "yield", "consumption")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Two months of one line with three machines (trains all three forecasters in a few seconds)."""
    return simulate(SimulationConfig(seed=7, days=60, lines=1, machines_per_line=3)).tables


@pytest.fixture(scope="module")
def trained(tables: dict[str, pd.DataFrame]) -> dict[str, Trained]:
    return {task: TRAINERS[task](dict(tables)) for task in TASKS}


def served_keys(tables: dict[str, pd.DataFrame], task: str) -> list[str]:
    """The keys serving/service.py logs in prediction_log.features for a request of the task."""
    context = FeatureContext(dict(tables), ())
    if task == "failure":
        return list(next(iter(context.machines.values())).features)
    if task == "yield":
        header = context.order_header(str(tables["production_orders"]["order_id"].iloc[-1]))
        return list(context.yield_features(header))
    rows = context.consumption_features(str(tables["energy_readings"]["meter_id"].iloc[0]), None)
    return [
        "series",
        "day",
        "rows",
        *(k for k in rows.columns if k not in ("series", "group", "target_day", "ts")),
    ]


@pytest.mark.parametrize("task", TASKS)
def test_reference_columns_are_the_logged_keys_plus_prediction(tables, trained, task) -> None:
    reference = reference_sample(task, trained[task], 100)
    assert list(reference.frame.columns) == [*served_keys(tables, task), "prediction"]
    assert set(reference.features) <= set(reference.frame.columns) - {"series", "day", "rows", "prediction"}
    assert reference.seed == REFERENCE_SEED and reference.frame["prediction"].notna().all()


@pytest.mark.parametrize("task", TASKS)
def test_reference_is_a_seeded_sample_of_the_training_rows_only(trained, task) -> None:
    model_run = trained[task]
    small = reference_sample(task, model_run, 20)
    assert len(small.frame) <= 20 and small.source_rows > 20
    pd.testing.assert_frame_equal(small.frame, reference_sample(task, model_run, 20).frame)
    assert not small.frame.equals(reference_sample(task, model_run, 20, seed=REFERENCE_SEED + 1).frame)
    split = model_run.report.split
    if task == "failure":
        assert model_run.split == "train"
        assert model_run.training["forecast_at"].max() < pd.Timestamp(split["validation_start"])
    elif task == "yield":  # refit on train + validation: both are its training rows, never the test rows
        assert model_run.split == "train+validation"
        assert model_run.training["released_at"].max() < pd.Timestamp(split["test_start"])
        assert len(model_run.training) == model_run.report.rows["train"] + model_run.report.rows["validation"]
    else:
        assert model_run.split == "train"
        assert pd.to_datetime(small.frame["day"]).max() < pd.Timestamp(split["validation_start"])
    if task != "consumption":
        features = list(model_run.model.features)
        found = small.frame[features].merge(model_run.training[features].drop_duplicates(), indicator=True)
        assert len(found) == len(small.frame) and (found["_merge"] == "both").all()


def test_prediction_is_what_the_service_reports(tables, trained) -> None:
    failure = reference_sample("failure", trained["failure"], 50).frame
    records = failure.drop(columns=["prediction"]).to_dict("records")
    served = [out["probability"] for out in scoring.score_failure_many(trained["failure"].model, records)]
    np.testing.assert_allclose(failure["prediction"], served, rtol=1e-9)
    orders = reference_sample("yield", trained["yield"], 50).frame
    records = orders.drop(columns=["prediction"]).to_dict("records")
    served = [out["yield_fraction"] for out in scoring.score_yield_many(trained["yield"].model, records)]
    np.testing.assert_allclose(orders["prediction"], served, rtol=1e-9)
    days = reference_sample("consumption", trained["consumption"], 50).frame
    first = days[days["rows"] == 96].iloc[0]
    readings = tables["energy_readings"]
    rows = build_features(
        readings[readings["meter_id"] == first["series"]], ENERGY_READINGS, [pd.Timestamp(first["day"])]
    )
    total = scoring.score_consumption(trained["consumption"].model, rows)["total_kwh"]
    assert first["prediction"] == pytest.approx(total, rel=1e-9)
    assert first["slot"] == 0 and (days["slot"] == 0).all()


def test_reference_round_trips_through_registration(settings, trained) -> None:
    database.upgrade(settings.resolved_database_url)
    model_run = trained["yield"]
    reference = reference_sample("yield", model_run, 100)
    source = DatasetInput("production_orders", "production_orders@1.0.0", 10, "0" * 64, ["b1"], ["a" * 64])
    candidate = Candidate(
        "yield",
        model_run.model,
        model_run.report,
        model_run.input_example,
        model_run.params,
        [source],
        reference,
    )
    save_candidate(settings, candidate)
    registration = register_candidate(settings, "yield", "run-1", ["curated/production_orders"])
    registry = Registry.from_settings(settings)
    record = registry.lineage(registration.model_name, registration.version).reference
    assert record is not None
    assert (record.rows, record.seed, record.split) == (100, REFERENCE_SEED, "train+validation")
    assert record.features == list(model_run.model.features)
    assert record.sha256 == hashlib.sha256(reference_parquet(reference.frame)).hexdigest()
    back = reference_features(registry, registration.model_name, registration.version)
    pd.testing.assert_frame_equal(back, reference.frame)
