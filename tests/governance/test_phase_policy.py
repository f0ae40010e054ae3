"""Phase policies: the shipped files load; invalid ones are refused naming the field and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.phase_policy import Phase, PolicyError, load_policies, load_policy

SHIPPED = Path(__file__).resolve().parents[2] / "governance" / "policies"


def test_every_model_has_a_policy_with_its_hash() -> None:
    policies = load_policies(SHIPPED)
    assert set(policies) == {"mesops-failure", "mesops-yield", "mesops-consumption"}
    failure = policies["mesops-failure"]
    assert failure.challenger_share(Phase.SHADOW) == 0.0
    assert 0 < failure.challenger_share(Phase.APPROVAL) <= failure.challenger_share(Phase.AUTONOMOUS)
    assert failure.is_low_risk("no_action") and not failure.is_low_risk("plan_maintenance")
    assert len(failure.sha256) == 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("challenger_share: 0.2", "challenger_share: 1.5"), "phases.approval.challenger_share"),
        (("low_risk_classes: [no_action]", "low_risk_classes: []"), "phases.autonomous.low_risk_classes"),
        (("version: 1.2.0", "version: one"), "version"),
        (("  shadow:\n", "  shadowy:\n"), "phases.shadowy"),
        (
            ("{signal: predictions, at_least: 100}", "{signal: predictions}"),
            "exactly one of at_least or at_most",
        ),
        (
            ("{signal: predictions, at_least: 100}", "{signal: speed, at_least: 1}"),
            "gates.shadow.advance.1.signal",
        ),
        (("min_sample: 3}", "min_sample: -3}"), "min_sample"),
        (("  champion:\n    keep:\n", "  champion:\n    hold:\n"), "gates.champion"),
    ],
)
def test_invalid_policy_names_field_and_rule(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    text = (SHIPPED / "failure.yaml").read_text()
    assert change[0] in text
    path = tmp_path / "failure.yaml"
    path.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(PolicyError, match=message):
        load_policy(path)


def test_two_policies_for_one_model_are_refused(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text((SHIPPED / "failure.yaml").read_text())
    with pytest.raises(PolicyError, match="second policy for mesops-failure"):
        load_policies(tmp_path)
