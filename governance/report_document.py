"""The governance report as a document: one frozen pydantic model per section (the JSON the HTML renders).

Every number a plot of the HTML shows is a field here. Built by governance.report.build_report.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from governance import audit
from governance.gates import GateEvaluation
from governance.lineage import Lineage
from models.evaluation import EvaluationReport

EventKind = Literal["registration", "promotion", "phase", "approval", "rollback", "other"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class VersionStatus(_Frozen):
    """Which version the report is about and where it stands in the rollout now."""

    model_name: str
    family: str
    version: str
    run_id: str
    registered_at: datetime
    status: str = Field(
        description="champion, challenger in <phase>, or no alias (retired / never promoted)."
    )
    champion: str | None
    challenger: str | None
    phase: str | None
    versions: list[str] = Field(description="Every registered version of the model.")
    pending_approval_seq: int | None = Field(
        default=None, description="Audit seq of an approval request of this version nobody answered yet."
    )
    pending_approval_to: str | None = None


class AttestationEvidence(_Frozen):
    """An anonymization attestation as recorded: policy, content hash, entities replaced per column."""

    attestation_id: str
    policy_version: str
    content_sha256: str
    rows: int | None
    replaced: dict[str, dict[str, int]] = Field(description="column -> entity type -> replaced count.")


class BatchEvidence(_Frozen):
    """One training table of one extract batch: where it came from, what its contract let through."""

    table: str
    batch_id: str
    source_kind: str | None
    extract_path: str | None
    manifest_sha256: str | None
    contract: str | None
    landed: int | None
    valid: int | None
    quarantined: int | None
    quarantined_by_reason: dict[str, int] = Field(default_factory=dict)
    attestation: AttestationEvidence | None = None


class LineageSection(_Frozen):
    """The lineage recorded at registration and the data evidence behind it."""

    lineage: Lineage
    missing_fields: list[str]
    batches: list[BatchEvidence]
    attestations_missing: list[str] = Field(
        description="Attestation ids the lineage names that the platform database does not hold."
    )
    attestation_policies: list[str] = Field(description="Policy versions of the attestations found.")


class OfflineSection(_Frozen):
    """The evaluation report of the version and, when another version is champion, its headline figures."""

    report: EvaluationReport
    champion_version: str | None = None
    champion_value: float | None = Field(default=None, description="The champion's headline metric offline.")
    champion_baseline_value: float | None = None


class DailyShadow(_Frozen):
    """One UTC day of the version's served traffic and, where paired, its comparison with the champion."""

    day: date
    served: int
    errors: int
    paired: int
    disagreements: int
    disagreement_rate: float | None
    mean_own: float | None
    mean_champion: float | None
    p99_latency_ms: float | None


class ShadowSection(_Frozen):
    """The version against the champion on the same requests (rows where it was the challenger)."""

    prediction_key: str
    first_served: datetime | None
    last_served: datetime | None
    served: int
    paired: int
    disagreements: int
    disagreement_rate: float | None
    per_day: list[DailyShadow]
    challengers_against: list[str] = Field(
        default_factory=list, description="Challenger versions scored beside this version as champion."
    )
    note: str = ""


class DriftFeatureScore(_Frozen):
    feature: str
    method: str
    score: float | None
    threshold: float
    drifted: bool


class DriftPoint(_Frozen):
    """One drift report of the version (Evidently), its window and where its files are."""

    computed_at: datetime
    window_start: datetime
    window_end: datetime
    reference_rows: int
    current_rows: int
    share_drifted: float
    drifted_features: list[str]
    prediction_drifted: bool | None
    features: list[DriftFeatureScore]
    html_path: str | None = Field(description="Relative to MESOPS_HOME/reports when under it.")
    json_path: str | None


class DriftSection(_Frozen):
    reports: list[DriftPoint]
    note: str = ""


class Rate(_Frozen):
    """accepted of decided, with the Wilson 95 % interval."""

    accepted: int
    decided: int
    rate: float | None
    lower: float | None
    upper: float | None


class DailyAcceptance(Rate):
    day: date
    made: int


class GroupAcceptance(Rate):
    group: str


class ReasonCount(_Frozen):
    status: str
    reason_code: str
    count: int


class AcceptanceSection(_Frozen):
    """Planners' decisions on the version's recommendations, by the day they were made, line, phase, reason."""

    made: int
    by_status: dict[str, int]
    total: Rate
    per_day: list[DailyAcceptance]
    by_line: list[GroupAcceptance]
    by_phase: list[GroupAcceptance]
    by_reason: list[ReasonCount]
    note: str = ""


class SignalValue(_Frozen):
    signal: str
    value: float | None
    sample: int
    note: str = ""


class DailyRealized(_Frozen):
    day: date
    outcomes: int
    signals: list[SignalValue]


class RealizedSection(_Frozen):
    """Accuracy of the served predictions against the outcomes posted so far (as the gates measure it)."""

    outcomes: int
    overall: list[SignalValue]
    per_day: list[DailyRealized]
    note: str = ""


class GateDecision(_Frozen):
    """A recorded gate evaluation of the version and the audit entries that acted on it."""

    evaluation: GateEvaluation
    followed_by: list[int] = Field(description="Audit seqs of the entries citing this evaluation.")


class GovernanceEvent(_Frozen):
    """A rollout decision about the version from the audit trail, with the gate evaluation it rests on."""

    seq: int
    occurred_at: datetime
    actor: str
    actor_role: str
    action: str
    kind: EventKind
    model_version: str | None
    alias: str | None
    reason: str
    evidence: dict[str, str | int | float | bool | None]
    evaluation_seq: int | None = None
    evaluation_version: str | None = None
    evaluation_verdict: str | None = None
    failed_conditions: list[str] = Field(default_factory=list)


class AuditSection(_Frozen):
    verification: audit.Verification
    model_entries: int
    decisions_audited: dict[str, int] = Field(description="Planner decisions on this version, by action.")
    commands: list[str]


class GovernanceReport(_Frozen):
    """The governance report of one model version (the JSON; the HTML renders the same document)."""

    generated_at: datetime
    window_days_note: str = (
        "Days are UTC days; acceptance and accuracy are grouped by the day of the prediction."
    )
    version: VersionStatus
    lineage: LineageSection
    offline: OfflineSection
    shadow: ShadowSection
    drift: DriftSection
    acceptance: AcceptanceSection
    realized: RealizedSection
    gates: list[GateDecision]
    governance: list[GovernanceEvent]
    audit: AuditSection
    personal_data: str = (
        "No personal data: machine, line, batch and run ids, counts and scores; actors and reasons of rollout "
        "decisions as the audit trail records them. Planner comments are left out (reason codes only)."
    )

    @property
    def rollbacks(self) -> list[GovernanceEvent]:
        """The decisions that moved the version back: restored champion, retired or demoted challenger."""
        return [e for e in self.governance if e.kind == "rollback"]
