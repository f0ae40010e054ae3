"""Machine events: the state timeline of every machine (running, idle, down, maintenance) with Andon comments."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.simulator.notes import PlantedEntity, TextContext, TextWriter
from pipelines.simulator.plant import SHIFTS, Plant
from pipelines.simulator.roster import Roster
from pipelines.simulator.sensors import DOWN, STATE_NAMES, MachineTimeline

COLUMNS = [
    "event_id",
    "machine_id",
    "state",
    "alarm_code",
    "started_at",
    "ended_at",
    "comment",
    "reported_by",
]


def _runs(state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) slot of every run of equal states."""
    change = np.flatnonzero(np.diff(state)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [state.size]])
    return starts, ends


def machine_events(
    plant: Plant,
    timelines: list[MachineTimeline],
    roster: Roster,
    writer: TextWriter,
    comment_probability: float,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, list[PlantedEntity]]:
    """One event per state change; down events carry the failure's alarm code and often an Andon comment.

    The state that lasts at the end of the window has no ``ended_at``.
    """
    grid = plant.grid
    times = grid.times()
    rows = []
    for t in timelines:
        failure_at = {f.slot + 1: f for f in t.failures}
        starts, ends = _runs(t.state)
        for a, b in zip(starts, ends, strict=True):
            state = int(t.state[a])
            failure = failure_at.get(int(a)) if state == DOWN else None
            rows.append(
                (
                    times[a],
                    t.machine.machine_id,
                    STATE_NAMES[state],
                    failure.alarm_code if failure else None,
                    times[b] if b < grid.n else pd.NaT,
                    failure,
                    t.machine.line_id,
                    int(a),
                )
            )
    rows.sort(key=lambda r: (r[0], r[1]))
    out, truth = [], []
    for i, (start, machine_id, state, alarm, end, failure, line, slot) in enumerate(rows):
        event_id = f"EV-{i + 1:07d}"
        comment = reported_by = None
        if failure is not None:
            crew = roster.crew(line, SHIFTS[(slot // grid.slots_per_shift) % 3])
            reported_by = crew[int(rng.integers(len(crew)))].full_name
            if rng.random() < comment_probability:
                ctx = TextContext(line_id=line, machines=[machine_id], alarms=[alarm])
                comment, planted = writer.andon(failure.mode, event_id, ctx)
                truth.extend(planted)
        out.append((event_id, machine_id, state, alarm, start, end, comment, reported_by))
    frame = pd.DataFrame(out, columns=COLUMNS)
    frame["started_at"] = pd.to_datetime(frame["started_at"])
    frame["ended_at"] = pd.to_datetime(frame["ended_at"])
    return frame, truth
