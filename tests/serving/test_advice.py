"""Recommendations from predictions: the class the policy judges, and a sentence naming entity and numbers."""

from __future__ import annotations

from serving.advice import consumption_advice, failure_advice, yield_advice


def test_failure_alarm_plans_maintenance_else_no_action() -> None:
    alarm = failure_advice("M-07", 0.31, 0.12, 8)
    assert alarm.action_class == "plan_maintenance" and "M-07" in alarm.text and "31%" in alarm.text
    calm = failure_advice("M-07", 0.05, 0.12, 8)
    assert calm.action_class == "no_action" and calm.details["threshold"] == 0.12


def test_yield_extra_call_off_is_what_the_scrap_needs() -> None:
    small = yield_advice("WO-4711", 0.97, 1000)  # ceil(1000 / 0.97) = 1031: 31 extra, within 5 %
    assert small.action_class == "small_extra_call_off" and small.details["extra_units"] == 31
    large = yield_advice("WO-4711", 0.8, 1000)
    assert large.action_class == "extra_call_off" and large.details["extra_units"] == 250
    assert "250 extra units" in large.text and "80% yield" in large.text
    assert yield_advice("WO-1", 1.0, 10).action_class == "no_action"
    assert yield_advice("WO-1", 0.0, 10).action_class == "review_order"


def test_consumption_reserves_the_upper_bound() -> None:
    advice = consumption_advice("EM-L1", "2026-11-25", 1000.0, 900.0, 1150.0, "2026-11-25T14:15:00")
    assert advice.action_class == "energy_reservation" and "reserve 1,150 kWh" in advice.text
