"""The governance report of a real trained installation: real traffic, planner decisions, outcomes, Evidently drift.

Uses the shared installation and service of this folder and changes no alias or phase: it sends failure-risk
requests, decides their recommendations as a planner, posts outcomes, runs one drift report, then writes the
report of the champion and of the challenger and searches both files for every planted personal value.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter

import pytest

from governance import drift
from governance.report import build_report, write_report
from tests.personal_data import find_in_text

pytestmark = pytest.mark.slow
MACHINES = [f"M-{i:02d}" for i in range(1, 13)]
REQUESTS, WITH_OUTCOME, DECIDED = 48, 24, 20
REMOTE = re.compile(r"""(?:src|href|action|poster)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def _traffic(service) -> list[dict]:  # type: ignore[no-untyped-def]
    """Failure-risk requests, outcomes for the first half, planner decisions on the first twenty."""
    run = uuid.uuid4().hex[:8]
    with service.client("integration") as client:
        answers = []
        for i in range(REQUESTS):
            body = {"machine_id": MACHINES[i % 12], "correlation_id": f"report-{run}-{i}"}
            response = client.post("/v1/failure/risk", json=body)
            assert response.status_code == 200, response.text
            answers.append(response.json())
        for i, answer in enumerate(answers[:WITH_OUTCOME]):
            outcome = {
                "model": "failure",
                "correlation_id": answer["correlation_id"],
                "entity_id": MACHINES[i % 12],
                "actual": float(i % 6 == 0),
                "observed_at": "2025-04-06T14:00:00Z",
            }
            assert client.post("/v1/outcomes", json=outcome).status_code == 200
    with service.client("planner") as planner:
        for i, answer in enumerate(answers[:DECIDED]):
            accept = i % 4 != 0
            decision = {
                "recommendation_id": answer["recommendation"]["recommendation_id"],
                "decision": "accept" if accept else "reject",
                "reason_code": "agreed" if accept else "wrong_prediction",
            }
            assert planner.post("/v1/feedback", json=decision).status_code == 200
    with service.client("ml-engineer") as engineer:
        engineer.post("/v1/recommendations", json={"limit": 1})  # flushes the prediction log
    return answers


def test_the_failure_report_carries_real_numbers_and_no_personal_data(service, installation) -> None:  # type: ignore[no-untyped-def]
    settings = service.settings
    answers = _traffic(service)
    answered = Counter(a["version"] for a in answers)
    decided = Counter(a["version"] for a in answers[:DECIDED])
    champion = max(answered, key=answered.get)  # type: ignore[arg-type]
    made = drift.run_drift_report(settings, "mesops-failure", champion)

    reports = {}
    for version in ("champion", None):  # the champion, and the default (the challenger when there is one)
        started = time.perf_counter()
        report = build_report(settings, "failure", version)
        html_path, json_path = write_report(settings, report)
        seconds = time.perf_counter() - started
        reports[report.version.version] = report
        html, document = html_path.read_text(), json_path.read_text()
        print(
            f"report of version {report.version.version} ({report.version.status}): {seconds:.1f} s, "
            f"HTML {len(html.encode()) / 1024:.0f} KB, JSON {len(document.encode()) / 1024:.0f} KB"
        )
        assert find_in_text(html, installation.roster_values) == []
        assert find_in_text(document, installation.roster_values) == []
        assert not REMOTE.search(html) and "<script" not in html.lower()
        for link in re.findall(r'href="([^"#]+)"', html):
            assert (html_path.parent / link).resolve().is_file(), link

    shown = reports[champion]
    assert shown.lineage.missing_fields == [] and shown.lineage.batches
    assert all(b.landed is not None and b.landed == b.valid + b.quarantined for b in shown.lineage.batches)
    assert shown.shadow.served >= answered[champion]
    assert shown.acceptance.total.decided >= decided[champion]
    assert shown.realized.outcomes >= sum(a["version"] == champion for a in answers[:WITH_OUTCOME])
    [latest] = [p for p in shown.drift.reports if p.computed_at == made.computed_at]
    assert latest.current_rows == made.current_rows and latest.share_drifted == made.share_drifted
    assert shown.audit.verification.ok
