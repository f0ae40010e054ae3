"""Anonymization: the step before anything leaves the landing zone.

Identifier columns become keyed pseudonyms, free text goes through Presidio, and each table gets an
:class:`Attestation` bound to the anonymized data. Entry point: :func:`anonymize_table`.

Names are loaded on first use (PEP 562): reading an attestation or hashing a frame (lineage, drift references)
must not pay for importing Presidio and spaCy, which only the anonymizer needs.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOME = {
    "anonymize_table": "anonymizer",
    "Attestation": "attestation",
    "AttestationMismatchError": "attestation",
    "ColumnAttestation": "attestation",
    "Method": "attestation",
    "frame_content_hash": "attestation",
    "verify_attestation": "attestation",
    "AnonymizationError": "engine",
    "TextAnonymizer": "engine",
    "get_text_anonymizer": "engine",
    "Roster": "pseudonyms",
    "RosterError": "pseudonyms",
    "keyed_pseudonym": "pseudonyms",
    "normalize": "pseudonyms",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
