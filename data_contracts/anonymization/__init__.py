"""Anonymization: the step before anything leaves the landing zone.

Identifier columns become keyed pseudonyms, free text goes through Presidio, and each table gets an
:class:`Attestation` bound to the anonymized data. Entry point: :func:`anonymize_table`.
"""

from data_contracts.anonymization.anonymizer import anonymize_table
from data_contracts.anonymization.attestation import (
    Attestation,
    AttestationMismatchError,
    ColumnAttestation,
    Method,
    frame_content_hash,
    verify_attestation,
)
from data_contracts.anonymization.engine import AnonymizationError, TextAnonymizer, get_text_anonymizer
from data_contracts.anonymization.pseudonyms import Roster, RosterError, keyed_pseudonym, normalize

__all__ = [
    "AnonymizationError",
    "Attestation",
    "AttestationMismatchError",
    "ColumnAttestation",
    "Method",
    "Roster",
    "RosterError",
    "TextAnonymizer",
    "anonymize_table",
    "frame_content_hash",
    "get_text_anonymizer",
    "keyed_pseudonym",
    "normalize",
    "verify_attestation",
]
