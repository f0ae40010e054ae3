"""Free text of the plant (shift handover notes, Andon comments, inspection remarks) with its ground truth.

Every personal entity planted in a text is recorded as a :class:`PlantedEntity` (character offsets into the
text), and so is every non-personal token a careless redactor might hit (machine ids, orders, parts, lots,
alarm codes, lines, weekdays, months, materials, capitalised technical words, vendors), with form
``non_personal``. For possessives ("Novák's") the entity is the name without the "'s"; for titles
("Mr. Okafor from Siemens service") it is the name without the title.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from pipelines.simulator.plant import SHIFTS, Plant, worked_shift
from pipelines.simulator.roster import FIRST_NAMES, Person, Roster

PERSONAL_FORMS = (
    "roster_full_name",
    "roster_last_name",
    "roster_first_name",
    "roster_lowercase",
    "roster_possessive",
    "badge_id",
    "employee_no",
    "phone",
    "email",
    "offroster_name",
)
NON_PERSONAL = "non_personal"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)  # fmt: skip  ("May" is left out: it is also a verb and a name)
MATERIAL_WORDS = ("Steel", "Aluminium", "Brass", "Copper", "Polymer", "Granulate", "Primer", "Resin")
TECH_WORDS = (
    "Spindle", "Coolant", "Press", "Hydraulic", "Conveyor", "Gearbox", "Chuck", "Fixture", "Servo", "Turret",
    "Bearing", "Compressor", "Robot", "Gripper", "Pump", "Encoder", "Clamp",
)  # fmt: skip
VENDORS = ("Siemens", "Fanuc", "Trumpf", "Heidenhain", "Kuka", "Bosch Rexroth")
TITLES = ("Mr.", "Ms.", "Dr.")
OFF_ROLES = ("contractor", "visitor", "technician", "auditor", "driver")

NOTE_TEMPLATES = (
    "{weekday} handover for {line}: {machine} ran fine, {tech} checked by {name}.",
    "Handed over to {name_full}. Order {order} ({part}) at {qty} pcs, {material} {lot} nearly used up.",
    "{machine} stopped with alarm {alarm}, {poss} team replaced the {tech} insert.",
    "{off_title} from {vendor} service comes {weekday} to look at the {tech} on {machine}.",
    "Call {name} on {phone} if {machine} trips again.",
    "Questions about {order} to {email} please.",
    "{name_full} (badge {badge}) covered the first two hours on {line}.",
    "Employee no. {empno} swapped into this shift.",
    "Contractor {off_full} worked on the {tech} near {machine}, escorted by {name_first}.",
    "{tech} pressure low on {machine}, told {name_last}.",
    "Visitor {off_full} was on {line} with {name} for the {month} audit.",
    "{lot} of {material} looks off, quarantined for {name} to check.",
    "Remind {name_first} that the {part} setup sheet changed in {month}.",
    "{poss} notes on {machine}: {tech} noise since {weekday}.",
    "Nothing special, {line} ran {qty} pcs of {part}.",
    "Spoke to {name_last} and {name_first} about {order}; {off} will call back.",
    "{off_initial} signed off the {tech} repair on {machine}.",
    "ask {name_lower} about {lot} before starting {order}.",
    "{name_lower} has the keys for the {tech} cabinet.",
    "{machine} {tech} alarm {alarm} cleared, {off_initial} ({vendor}) on site until {weekday}.",
    "Badge {badge} found at the {tech} station on {line}.",
    "{name_full} reachable on {phone} for {part} questions.",
    "Scrap on {order} higher than usual, {material} from {lot}, see {poss} report.",
    "Per {name_last}: {machine} only for {part} until {month}.",
)
ANDON_TEMPLATES: dict[str, tuple[str, ...]] = {
    "tool_wear": ("Tool worn out on {machine}, alarm {alarm}.", "Insert broke on {machine} ({alarm}), {tech} ok."),
    "overstrain": ("Overload on {machine}, {tech} tripped ({alarm}).", "{machine} overstrain {alarm} at {qty} pcs."),
    "power": ("{machine} drive fault {alarm}, {tech} reset failed.", "Power fault on {machine}, alarm {alarm}."),
    "heat_dissipation": ("{machine} overheating, {tech} flow low, alarm {alarm}.", "{tech} too hot on {machine} ({alarm})."),
    "degradation": ("Heavy vibration on {machine} {tech}, alarm {alarm}.", "{tech} noise on {machine}, stopped ({alarm})."),
    "random": ("{machine} stopped unexpectedly, alarm {alarm}.", "{machine} down, cause unclear ({alarm})."),
}  # fmt: skip
ANDON_PEOPLE = (
    "Called {name}.",
    "{off_title} from {vendor} service informed.",
    "Maintenance: {name_full} ({phone}).",
    "{poss} crew on it.",
    "Reported to {email}.",
    "{name_first} waiting for {off_initial}.",
    "badge {badge} on the lockout tag.",
)
REMARK_TEMPLATES = (
    "Re-measured by {name}, within limits.",
    "{part} batch from {lot} borderline.",
    "Gauge checked with {off_title} from {vendor}.",
    "Sample taken by {name_first} on {weekday}.",
    "Contact {email} for the {month} report.",
    "Second check by {poss} team, {tech} clean.",
    "Employee no. {empno} did the first article.",
    "Nothing to add.",
)
PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class PlantedEntity:
    """One token planted in free text: where it is (character offsets) and what it is (``form``)."""

    table: str
    key: str
    column: str
    form: str
    value: str
    start: int
    end: int


@dataclass
class TextContext:
    """The plant vocabulary a text can mention (ids of the line, orders, lots, alarm codes)."""

    line_id: str = "L1"
    machines: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    lots: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)


class TextWriter:
    """Renders templates into text and records every planted token."""

    def __init__(self, roster: Roster, rng: np.random.Generator) -> None:
        self.people = list(roster.people)
        self.with_phone = [p for p in self.people if p.phone]
        self.with_email = [p for p in self.people if p.email]
        self.off_last = list(roster.off_roster_last_names)
        self.rng = rng

    def _pick(self, items: list | tuple):
        return items[int(self.rng.integers(len(items)))]

    def _person(self) -> Person:
        return self._pick(self.people)

    def _fill(self, name: str, ctx: TextContext) -> list[tuple[str, str | None]]:
        """Pieces (text, form or None) for one placeholder."""
        if name == "name":
            name = self._pick(("name_full", "name_full", "name_last", "name_first", "name_lower"))
        if name == "off":
            name = self._pick(("off_initial", "off_title", "off_full"))
        p = self._person()
        personal = {
            "name_full": lambda: [(p.full_name, "roster_full_name")],
            "name_last": lambda: [(p.last_name, "roster_last_name")],
            "name_first": lambda: [(p.first_name, "roster_first_name")],
            "name_lower": lambda: [(p.full_name.lower(), "roster_lowercase")],
            "poss": lambda: [(self._pick((p.last_name, p.first_name)), "roster_possessive"), ("'s", None)],
            "badge": lambda: [(p.badge_id, "badge_id")],
            "empno": lambda: [(p.employee_no, "employee_no")],
            "phone": lambda: (
                [(self._pick(self.with_phone).phone, "phone")] if self.with_phone else [("-", None)]
            ),
            "email": lambda: (
                [(self._pick(self.with_email).email, "email")] if self.with_email else [("-", None)]
            ),
            "off_initial": lambda: [
                (f"{self._pick(FIRST_NAMES)[0]}. {self._pick(self.off_last)}", "offroster_name")
            ],
            "off_title": lambda: [
                (self._pick(TITLES) + " ", None),
                (self._pick(self.off_last), "offroster_name"),
            ],
            "off_full": lambda: [
                (f"{self._pick(FIRST_NAMES)} {self._pick(self.off_last)}", "offroster_name")
            ],
        }
        if name in personal:
            return personal[name]()
        return [self._token(name, ctx)]

    def _token(self, name: str, ctx: TextContext) -> tuple[str, str | None]:
        number = int(self.rng.integers(1, 1000))
        vocab = {
            "machine": lambda: self._pick(ctx.machines) if ctx.machines else "M-01",
            "order": lambda: self._pick(ctx.orders) if ctx.orders else f"WO-{100_000 + number}",
            "part": lambda: self._pick(ctx.parts) if ctx.parts else "P-101",
            "lot": lambda: self._pick(ctx.lots) if ctx.lots else f"LOT-{number:05d}",
            "alarm": lambda: self._pick(ctx.alarms) if ctx.alarms else f"E{number % 900 + 100}",
            "line": lambda: f"Line {ctx.line_id[1:]}",
            "weekday": lambda: self._pick(WEEKDAYS),
            "month": lambda: self._pick(MONTHS),
            "material": lambda: self._pick(MATERIAL_WORDS),
            "tech": lambda: self._pick(TECH_WORDS),
            "vendor": lambda: self._pick(VENDORS),
        }
        if name == "qty":
            return (str(10 * number), None)
        if name not in vocab:
            raise KeyError(f"template placeholder {{{name}}} is not known")
        return (vocab[name](), NON_PERSONAL)

    def render(self, templates: list[str], table: str, key: str, column: str, ctx: TextContext):
        """Join rendered templates with spaces; returns the text and its planted entities."""
        text, truth = "", []
        for t_index, template in enumerate(templates):
            if t_index:
                text += " "
            for i, piece in enumerate(PLACEHOLDER.split(template)):
                if i % 2 == 0:
                    text += piece
                    continue
                for value, form in self._fill(piece, ctx):
                    if form is not None:
                        truth.append(
                            PlantedEntity(table, key, column, form, value, len(text), len(text) + len(value))
                        )
                    text += value
        return text, truth

    def note(self, table: str, key: str, column: str, ctx: TextContext) -> tuple[str, list[PlantedEntity]]:
        """A handover note of two to four sentences."""
        k = int(self.rng.integers(2, 5))
        chosen = [NOTE_TEMPLATES[int(i)] for i in self.rng.choice(len(NOTE_TEMPLATES), size=k, replace=False)]
        return self.render(chosen, table, key, column, ctx)

    def andon(self, mode: str, key: str, ctx: TextContext) -> tuple[str, list[PlantedEntity]]:
        """An Andon comment: what happened, then often who was called."""
        chosen = [self._pick(ANDON_TEMPLATES[mode])]
        if self.rng.random() < 0.75:
            chosen.append(self._pick(ANDON_PEOPLE))
        return self.render(chosen, "machine_events", key, "comment", ctx)

    def remark(self, key: str, ctx: TextContext) -> tuple[str, list[PlantedEntity]]:
        """An inspector's remark."""
        return self.render([self._pick(REMARK_TEMPLATES)], "inspections", key, "remark", ctx)


class LineVocabulary:
    """Orders, parts, lots and alarm codes of each line by time, for notes that mention what just happened."""

    def __init__(
        self,
        plant: Plant,
        orders: pd.DataFrame,
        consumption: pd.DataFrame,
        failures: list[tuple[datetime, str, str]],
    ) -> None:
        self.machines = {line: [m.machine_id for m in plant.line_machines(line)] for line in plant.line_ids}
        lots_of: dict[str, list[str]] = {}
        for order_id, lot_id in zip(consumption["order_id"], consumption["lot_id"], strict=True):
            lots_of.setdefault(order_id, []).append(lot_id)
        self.orders: dict[str, tuple[np.ndarray, list[tuple[str, str, list[str]]]]] = {}
        for line in plant.line_ids:
            mine = orders[orders["line_id"] == line].sort_values("released_at", kind="stable")
            info = [
                (o, p, lots_of.get(o, [])) for o, p in zip(mine["order_id"], mine["product_id"], strict=True)
            ]
            self.orders[line] = (mine["released_at"].to_numpy(dtype="datetime64[ns]"), info)
        line_of = {m.machine_id: m.line_id for m in plant.machines}
        self.alarms: dict[str, tuple[np.ndarray, list[str]]] = {}
        for line in plant.line_ids:
            mine_f = sorted((at, code) for at, machine, code in failures if line_of[machine] == line)
            times = np.array([np.datetime64(at, "ns") for at, _ in mine_f], dtype="datetime64[ns]")
            self.alarms[line] = (times, [code for _, code in mine_f])

    def context(self, line: str, at: datetime) -> TextContext:
        """What a note written on ``line`` at ``at`` can mention: the last day's orders, lots and alarms."""
        end, since = np.datetime64(at, "ns"), np.datetime64(at - timedelta(days=1), "ns")
        times, info = self.orders[line]
        recent = info[np.searchsorted(times, since, side="right") : np.searchsorted(times, end, side="right")]
        a_times, codes = self.alarms[line]
        alarms = codes[
            np.searchsorted(a_times, since, side="right") : np.searchsorted(a_times, end, side="right")
        ]
        return TextContext(
            line_id=line,
            machines=self.machines[line],
            orders=[o for o, _, _ in recent],
            parts=sorted({p for _, p, _ in recent}),
            lots=sorted({lot for _, _, lots in recent for lot in lots}),
            alarms=alarms,
        )


def shift_notes(
    plant: Plant,
    roster: Roster,
    writer: TextWriter,
    vocabulary: LineVocabulary,
    per_shift: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, list[PlantedEntity]]:
    """Handover notes per line and worked shift, written near the end of the shift by one of its operators."""
    rows = []
    for line in plant.line_ids:
        for day in range(plant.days):
            production_day = plant.start + timedelta(days=day)
            for s, shift in enumerate(SHIFTS):
                if not worked_shift(production_day, s):
                    continue
                shift_end = plant.grid.t0 + timedelta(days=day, minutes=(s + 1) * 480)
                crew = roster.crew(line, shift)
                for _ in range(per_shift):
                    author = crew[int(rng.integers(len(crew)))]
                    at = shift_end - timedelta(minutes=int(rng.integers(5, 40)))
                    rows.append((at, int(line[1:]), line, shift, production_day, author))
    rows.sort(key=lambda r: (r[0], r[1]))
    out, truth = [], []
    for i, (at, _, line, shift, production_day, author) in enumerate(rows):
        note_id = f"SN-{i + 1:06d}"
        text, planted = writer.note("shift_notes", note_id, "text", vocabulary.context(line, at))
        truth.extend(planted)
        out.append((note_id, line, shift, production_day, at, author.full_name, author.badge_id, text))
    columns = [
        "note_id",
        "line_id",
        "shift",
        "shift_date",
        "written_at",
        "author_name",
        "author_badge",
        "text",
    ]
    return pd.DataFrame(out, columns=columns), truth
