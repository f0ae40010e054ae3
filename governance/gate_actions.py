"""What a gate verdict does: advance the challenger, ask for approval, or roll back; and human approvals.

- advance from shadow: the challenger moves to approval at once (it still answers only a share, and every
  recommendation it makes waits for a planner);
- advance from approval (into autonomous) or from autonomous (to champion): an approval request is recorded;
  a ``governance`` or ``ml-engineer`` who is not the requester approves it with :func:`approve`, which makes
  the move. An approval is refused when a newer evaluation of the model exists (the evidence went stale) or
  the challenger moved meanwhile;
- roll back: a challenger that answers (approval, autonomous) goes back to shadow; one in shadow loses its
  challenger alias; a champion failing its own gate is replaced by the previous champion.

Every step is an audit entry naming the gate evaluation (its audit sequence number) it rests on. The service
follows within ``MESOPS_SERVING_REFRESH_S``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from governance import audit, rollout
from governance.gates import EVALUATION_ACTION, GateEvaluation, Verdict, full_name
from governance.phase_policy import Phase, PhasePolicy
from governance.promotion import CHALLENGER, CHAMPION, PromotionRefusedError, demote, promote
from governance.promotion import rollback as restore_previous
from governance.registry import Registry
from mesops.settings import Settings

REQUEST_ACTION = "approval_requested"
APPROVE_ACTION = "approve"
APPROVER_ROLES = ("governance", "ml-engineer")
Target = Literal["autonomous", "champion"]
NEXT: dict[str, str] = {"shadow": "approval", "approval": "autonomous", "autonomous": "champion"}


class ApprovalError(RuntimeError):
    """An approval that cannot be given: who, of what, and which rule stops it."""


class GateAction(BaseModel):
    """What applying a verdict (or an approval) did."""

    model_config = ConfigDict(frozen=True)

    action: Literal["advanced", "approval_requested", "rolled_back", "held", "promoted"]
    detail: str
    audit_seq: int | None = None


class ApprovalRequest(BaseModel):
    """An advance waiting for a human: into autonomous or to champion."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    version: str
    to: Target
    requested_by: str
    evaluation_seq: int
    audit_seq: int


def _gate_actor(policy: PhasePolicy) -> str:
    return f"gate:{policy.ref}"


def apply(
    settings: Settings, evaluation: GateEvaluation, policy: PhasePolicy, *, actor: str, actor_role: audit.Role
) -> GateAction:
    """Carry out a recorded evaluation's verdict."""
    if evaluation.audit_seq is None:
        raise ValueError("evaluation: only a recorded evaluation (with audit_seq) can be applied")
    if evaluation.verdict == Verdict.ROLL_BACK:
        return _roll_back(settings, evaluation, policy)
    if evaluation.verdict == Verdict.HOLD:
        return GateAction(action="held", detail=evaluation.summary(), audit_seq=evaluation.audit_seq)
    if evaluation.phase == "shadow":
        entry = rollout.set_phase(
            settings.resolved_database_url,
            evaluation.model_name,
            Phase.APPROVAL,
            policy,
            actor=_gate_actor(policy),
            actor_role="system",
            reason=f"gate evaluation #{evaluation.audit_seq}: every advance condition passed",
            evidence={"evaluation_seq": evaluation.audit_seq},
        )
        return GateAction(action="advanced", detail="shadow -> approval", audit_seq=entry.seq)
    return _request(settings, evaluation, actor=actor, actor_role=actor_role)


def _request(
    settings: Settings, evaluation: GateEvaluation, *, actor: str, actor_role: audit.Role
) -> GateAction:
    target: Target = "autonomous" if evaluation.phase == "approval" else "champion"
    entry = audit.append(
        settings.resolved_database_url,
        audit.AuditEvent(
            actor=actor,
            actor_role=actor_role,
            action=REQUEST_ACTION,
            model_name=evaluation.model_name,
            model_version=evaluation.version,
            alias=CHALLENGER,
            reason=f"gate evaluation #{evaluation.audit_seq} says advance to {target}: needs a human approval",
            evidence={"to": target, "evaluation_seq": evaluation.audit_seq, "requested_by": actor},
        ),
    )
    return GateAction(
        action="approval_requested",
        detail=f"{evaluation.phase} -> {target} waits for approval by {' or '.join(APPROVER_ROLES)} "
        f"(not {actor}): mesops approve {evaluation.model_name.removeprefix('mesops-')}",
        audit_seq=entry.seq,
    )


def _roll_back(settings: Settings, evaluation: GateEvaluation, policy: PhasePolicy) -> GateAction:
    url = settings.resolved_database_url
    failed = ", ".join(c.rule for c in evaluation.failed) or "a keep condition"
    reason = f"gate evaluation #{evaluation.audit_seq}: {failed} failed"
    actor = _gate_actor(policy)
    evidence = {"evaluation_seq": evaluation.audit_seq}
    if evaluation.phase in ("approval", "autonomous"):
        entry = rollout.set_phase(
            url,
            evaluation.model_name,
            Phase.SHADOW,
            policy,
            actor=actor,
            actor_role="system",
            reason=reason,
            evidence=evidence,
        )
        return GateAction(action="rolled_back", detail=f"{evaluation.phase} -> shadow", audit_seq=entry.seq)
    registry = Registry.from_settings(settings)
    if evaluation.phase == "shadow":
        decision = demote(
            registry,
            url,
            evaluation.model_name,
            alias=CHALLENGER,
            actor=actor,
            actor_role="system",
            reason=reason,
        )
        return GateAction(
            action="rolled_back",
            detail=f"challenger {decision.from_version} retired; champion keeps answering",
            audit_seq=decision.audit_seq,
        )
    try:
        decision = restore_previous(
            registry, url, evaluation.model_name, actor=actor, actor_role="system", reason=reason
        )
    except PromotionRefusedError as err:
        return GateAction(
            action="held", detail=f"roll back wanted but not possible: {err}", audit_seq=evaluation.audit_seq
        )
    return GateAction(
        action="rolled_back",
        detail=f"champion {decision.from_version} -> previous champion {decision.to_version}",
        audit_seq=decision.audit_seq,
    )


# --- approvals --------------------------------------------------------------------------------------------------
def pending_request(db_url: str, model: str) -> ApprovalRequest | None:
    """The newest approval request of the model that nothing answered or outdated since."""
    name = full_name(model)
    view = rollout.view(db_url, name)
    request: ApprovalRequest | None = None
    for entry in audit.entries(db_url, name):
        event = entry.event
        if event.action == REQUEST_ACTION:
            request = ApprovalRequest(
                model_name=name,
                version=str(event.model_version),
                to=event.evidence["to"],
                requested_by=event.evidence.get("requested_by", event.actor),
                evaluation_seq=int(event.evidence["evaluation_seq"]),
                audit_seq=entry.seq,
            )
        elif request is not None and (
            event.action == APPROVE_ACTION
            or (event.action == EVALUATION_ACTION and entry.seq > request.evaluation_seq)
            or event.action in ("set_phase", "demote", "promote", "rollback")
        ):
            request = None  # answered, outdated by a newer evaluation, or the rollout moved
    if request is None or request.version != view.challenger:
        return None
    return request


def approve(
    settings: Settings, model: str, policy: PhasePolicy, *, actor: str, actor_role: audit.Role, reason: str
) -> GateAction:
    """Approve the pending advance of the model's challenger and make it (another person than the requester)."""
    url = settings.resolved_database_url
    name = full_name(model)
    if actor_role not in APPROVER_ROLES:
        raise ApprovalError(
            f"role: {actor_role!r} may not approve; needs one of: {', '.join(APPROVER_ROLES)}"
        )
    request = pending_request(url, name)
    if request is None:
        raise ApprovalError(
            f"{name}: no pending approval request (run `mesops gates evaluate {name.removeprefix('mesops-')}`; "
            "a newer evaluation or a rollout change outdates an older request)"
        )
    if actor == request.requested_by:
        raise ApprovalError(
            f"actor: {actor!r} requested this advance (audit #{request.audit_seq}) and may not approve it too"
        )
    approval = audit.append(
        url,
        audit.AuditEvent(
            actor=actor,
            actor_role=actor_role,
            action=APPROVE_ACTION,
            model_name=name,
            model_version=request.version,
            alias=CHALLENGER,
            reason=reason,
            evidence={
                "request_seq": request.audit_seq,
                "evaluation_seq": request.evaluation_seq,
                "to": request.to,
            },
        ),
    )
    why = f"approved by {actor} (audit #{approval.seq}) on gate evaluation #{request.evaluation_seq}"
    evidence = {"approval_seq": approval.seq, "evaluation_seq": request.evaluation_seq}
    if request.to == "autonomous":
        entry = rollout.set_phase(
            url,
            name,
            Phase.AUTONOMOUS,
            policy,
            actor=actor,
            actor_role=actor_role,
            reason=why,
            evidence=evidence,
        )
        return GateAction(action="advanced", detail="approval -> autonomous", audit_seq=entry.seq)
    registry = Registry.from_settings(settings)
    decision = promote(
        registry, url, name, request.version, alias=CHAMPION, actor=actor, actor_role=actor_role, reason=why
    )
    demote(
        registry,
        url,
        name,
        alias=CHALLENGER,
        actor=actor,
        actor_role=actor_role,
        reason=f"now champion; {why}",
    )
    return GateAction(
        action="promoted",
        detail=f"version {request.version} is champion (was {decision.from_version})",
        audit_seq=decision.audit_seq,
    )
