"""Hand-made fixtures for the anonymization tests: a small roster and marked-up shift notes and Andon comments.

Markup: ``{form:value}`` plants ``value`` with ground-truth ``form`` (abbreviated, see FORMS); everything else is
plain text. The roster uses other id formats than the simulator so format induction is exercised.
"""

from __future__ import annotations

import re

import pandas as pd

FORMS = {
    "rf": "roster_full_name",
    "rl": "roster_last_name",
    "rfirst": "roster_first_name",
    "rlow": "roster_lowercase",
    "rp": "roster_possessive",
    "bd": "badge_id",
    "emp": "employee_no",
    "ph": "phone",
    "em": "email",
    "off": "offroster_name",
    "np": "non_personal",
}
ROSTER_ROWS = [
    ("E-10023", "BDG-00417", "Anna", "Novák", "anna.novak@plant01.example.com", "+420 601 234 567"),
    ("E-10024", "BDG-00418", "Tomáš", "Dvořák", "tomas.dvorak@plant01.example.com", "+49 151 2345 6789"),
    ("E-10031", "BDG-00502", "Jürgen", "Schmidt", None, "+44 7700 900123"),
    ("E-10045", "BDG-00533", "Priya", "Sharma", "priya.sharma@plant01.example.com", None),
    ("E-10052", "BDG-00610", "Kwame", "Mensah", "kwame.mensah@plant01.example.com", "(555) 201-3344"),
    ("E-10060", "BDG-00611", "Élodie", "Lefebvre", "elodie.lefebvre@plant01.example.com", "0171 2345678"),
]
MARKED_NOTES = [
    "{np:Monday} handover for {np:Line 2}: {np:M-07} stopped with alarm {np:E204}, {rf:Anna Novák} replaced the "
    "{np:Spindle} bearing. Called contractor {off:Jan Kowalczyk} from {np:Siemens}, back on {np:Friday}.",
    "{rp:Dvořák}'s team swapped the {np:Coolant} pump on {np:M-12}. Order {np:WO-100233} ({np:P-101}) at 450 pcs, "
    "{np:LOT-00012} nearly used up. Handed over to {rl:Sharma}.",
    "ask {rlow:jürgen schmidt} about {np:LOT-00013} before starting {np:WO-100240}. {off:J. Okafor} signed off the "
    "{np:Gearbox} repair on {np:M-03}.",
    "Call {rfirst:Priya} on {ph:+420 601 234 567} if {np:M-04} trips again. Questions about {np:WO-100233} to "
    "{em:kwame.mensah@plant01.example.com} please.",
    "{rf:Mensah, Kwame} (badge {bd:BDG-00533}) covered the first two hours on {np:Line 3}. Employee no. "
    "{emp:E-10060} swapped into this shift.",
    "Overload on {np:M-05}, {np:Hydraulic} tripped ({np:A113}). Maintenance: {rf:Élodie Lefebvre} "
    "({ph:0171 2345678}).",
    "{np:Press} 3 too hot ({np:E311}). Mr. {off:Haddad} from {np:Fanuc} service informed, reachable on "
    "{ph:+1 555 987 6543}.",
    "Re-measured by {rlow:anna novak} on {np:Tuesday}, within limits. {np:Chuck} clean, {np:P-104} batch from "
    "{np:LOT-00020} borderline.",
    "Visitor {off:Maria Gonzalez} was on {np:Line 1} with {rl:Schmidt} for the {np:March} audit. spoke with "
    "{off:pedro alvarez} about {np:M-09}.",
    "{np:Robot} alarm {np:E204} cleared, {off:T. van der Berg} ({np:Kuka}) on site until {np:Thursday}. Badge "
    "{bd:BDG-00610} found at the {np:Conveyor} station on {np:Line 2}.",
    "{rfirst:Kwame} waiting for technician {off:Lindgren}. Phone {ph:(555) 201-3344}, mail "
    "{em:t.dvorak@plant.local}. {off:Ekström}'s crew is on {np:Line 2} tonight.",
    "Spoke to {rl:Novák} and {rfirst:Tomáš} about {np:WO-100233}; Dr. {off:Nakamura} will call back. "
    "{rlow:tomas dvorak} has the keys for the {np:Servo} cabinet.",
    "Per {rl:Lefebvre}: {np:M-07} only for {np:P-104} until {np:June}. Emp {emp:E-10023}, phone "
    "{ph:+49 151 2345 6789}. Ms {off:Brown} comes {np:Wednesday}, {np:Gripper} on {np:M-11}.",
    "{rp:Élodie}'s notes on {np:M-02}: {np:Encoder} noise since {np:Sunday}. {rf:Schmidt, Jürgen} and "
    "{off:Ingrid Solberg} checked the {np:Turret}, {rf:A. Novák} informed.",
]
_MARK = re.compile(r"\{(\w+):([^{}]+)\}")


def parse_marked(marked: str) -> tuple[str, list[tuple[int, int, str]]]:
    """Plain text and its ground-truth spans from a marked-up note."""
    text, spans, position = "", [], 0
    for match in _MARK.finditer(marked):
        text += marked[position : match.start()]
        form, value = FORMS[match.group(1)], match.group(2)
        spans.append((len(text), len(text) + len(value), form))
        text += value
        position = match.end()
    return text + marked[position:], spans


def roster_frame() -> pd.DataFrame:
    """The landed employees frame of the fixture roster."""
    columns = ["employee_no", "badge_id", "first_name", "last_name", "email", "phone"]
    return pd.DataFrame(ROSTER_ROWS, columns=columns)


def ground_truth() -> list[tuple[str, list[tuple[int, int, str]]]]:
    """Every fixture note as (text, spans)."""
    return [parse_marked(note) for note in MARKED_NOTES]
