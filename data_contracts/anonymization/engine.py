"""The Presidio engines for free text, built once per process per roster and key.

Presidio runs with no model download: its NLP engine is a blank spaCy pipeline saved under a cache folder (or a
plant's own NER model, by path), and the e-mail validation's public-suffix list is kept offline.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import spacy
import tldextract
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine, NlpEngineProvider
from presidio_analyzer.predefined_recognizers import SpacyRecognizer
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig
from presidio_anonymizer.entities import RecognizerResult as AnonymizerResult

from data_contracts.anonymization.pseudonyms import Roster, keyed_pseudonym
from data_contracts.anonymization.recognizers import (
    BADGE_ID,
    EMAIL_ADDRESS,
    EMPLOYEE_NO,
    PERSON,
    PHONE_NUMBER,
    ROSTER_PERSON,
    build_recognizers,
)

LANGUAGE = "en"
BLANK_PIPELINE_DIR = "spacy-blank"
NER_RECOGNIZER = "SpacyRecognizer"


class AnonymizationError(ValueError):
    """Anonymization cannot run as configured: names the setting or input and the rule it breaks."""


@dataclass(frozen=True)
class TextResult:
    """One text after anonymization with the entities found and replaced, by entity type."""

    text: str
    found: Counter[str]
    replaced: Counter[str]


def offline_tldextract() -> None:
    """Keep tldextract (used by Presidio's e-mail validation) on its bundled suffix list: no fetch."""
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def blank_pipeline(cache_dir: Path) -> Path:
    """The blank English spaCy pipeline under ``cache_dir``, created on first use (atomically)."""
    target = cache_dir / BLANK_PIPELINE_DIR
    if (target / "config.cfg").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".spacy-blank-", dir=cache_dir))
    spacy.blank(LANGUAGE).to_disk(staging)
    try:
        staging.rename(target)
    except OSError:  # another process created it first; theirs is identical
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _nlp_engine(model_path: Path) -> NlpEngine:
    """A spaCy NLP engine over a pipeline folder; Presidio would try to download a name it cannot find."""
    if not (model_path / "config.cfg").exists():
        raise AnonymizationError(
            f"ner_model_path: {model_path} is not a spaCy pipeline folder (no config.cfg); install an approved "
            "model and point MESOPS_NER_MODEL_PATH at its folder, or unset it"
        )
    config = {"nlp_engine_name": "spacy", "models": [{"lang_code": LANGUAGE, "model_name": str(model_path)}]}
    return NlpEngineProvider(nlp_configuration=config).create_engine()


class CuesInRecognizers(ContextAwareEnhancer):
    """No lemma-based score boost: the recognizers apply their cue words themselves (and it deep-copies results)."""

    def __init__(self) -> None:
        super().__init__(
            context_similarity_factor=0.0,
            min_score_with_context_similarity=0.0,
            context_prefix_count=0,
            context_suffix_count=0,
        )

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        """Return the results unchanged."""
        return raw_results


class TextAnonymizer:
    """Presidio analyzer + anonymizer for one roster and key: roster people get their pseudonym in the text."""

    def __init__(
        self, roster: Roster, key: bytes, cache_dir: Path, ner_model_path: Path | None = None
    ) -> None:
        self.roster = roster
        self._key = key
        self.uses_ner = ner_model_path is not None
        offline_tldextract()
        self._nlp = _nlp_engine(ner_model_path if ner_model_path is not None else blank_pipeline(cache_dir))
        recognizers: list[EntityRecognizer] = build_recognizers(roster)
        if self.uses_ner:
            recognizers.append(SpacyRecognizer(supported_entities=[PERSON]))
        registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])
        self.analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=self._nlp,
            supported_languages=[LANGUAGE],
            context_aware_enhancer=CuesInRecognizers(),
        )
        self.anonymizer = AnonymizerEngine()
        self._operators = {
            ROSTER_PERSON: OperatorConfig("custom", {"lambda": self._person_tag}),
            PERSON: OperatorConfig("replace", {"new_value": "<PERSON>"}),
            EMPLOYEE_NO: OperatorConfig("custom", {"lambda": lambda v: self._id_tag("EMPLOYEE", v)}),
            BADGE_ID: OperatorConfig("custom", {"lambda": lambda v: self._id_tag("BADGE", v)}),
            PHONE_NUMBER: OperatorConfig("replace", {"new_value": "<PHONE>"}),
            EMAIL_ADDRESS: OperatorConfig("replace", {"new_value": "<EMAIL>"}),
            "DEFAULT": OperatorConfig("replace", {"new_value": "<REDACTED>"}),
        }
        self._empty_artifacts = NlpArtifacts([], None, [], [], None, LANGUAGE)  # type: ignore[arg-type]

    @property
    def recognizer_names(self) -> list[str]:
        """Name@version of every recognizer in the registry, for the attestation."""
        return sorted(f"{r.name}@{r.version}" for r in self.analyzer.registry.recognizers)

    def _person_tag(self, value: str) -> str:
        people = self.roster.people_named(value)
        # A first name two people share cannot be linked to one of them: redact without a pseudonym.
        return f"<PERSON:{people[0].pseudonym}>" if len(people) == 1 else "<PERSON>"

    def _id_tag(self, kind: str, value: str) -> str:
        person = self.roster.person_by_id(value)
        pseudonym = person.pseudonym if person else keyed_pseudonym(self._key, "value", value)
        return f"<{kind}:{pseudonym}>"

    def analyze(self, texts: Sequence[str]) -> list[list[RecognizerResult]]:
        """Presidio analyzer results per text (spaCy runs only when an NER model is configured)."""
        if self.uses_ner:
            artifacts = [a for _, a in self._nlp.process_batch(list(texts), LANGUAGE, batch_size=64)]
        else:
            # The blank pipeline yields no entities and no recognizer here reads tokens: skip the spaCy pass.
            artifacts = [self._empty_artifacts] * len(texts)
        return [
            self.analyzer.analyze(text, LANGUAGE, nlp_artifacts=art) if text.strip() else []
            for text, art in zip(texts, artifacts, strict=True)
        ]

    def anonymize(self, texts: Sequence[str]) -> list[TextResult]:
        """Anonymize each distinct text once; results come back in the order given."""
        distinct = list(dict.fromkeys(texts))
        done: dict[str, TextResult] = {}
        for text, results in zip(distinct, self.analyze(distinct), strict=True):
            if not results:
                done[text] = TextResult(text, Counter(), Counter())
                continue
            # Plain results without recognizer metadata: the anonymizer deep-copies what it is given.
            plain = [AnonymizerResult(r.entity_type, r.start, r.end, r.score) for r in results]
            engine_result = self.anonymizer.anonymize(text, plain, operators=self._operators)
            done[text] = TextResult(
                engine_result.text,
                Counter(r.entity_type for r in results),
                Counter(item.entity_type for item in engine_result.items),
            )
        return [done[text] for text in texts]


_ENGINES: dict[str, TextAnonymizer] = {}
_ENGINES_LOCK = threading.Lock()
_MAX_ENGINES = 4


def get_text_anonymizer(
    roster: Roster, key: bytes, cache_dir: Path, ner_model_path: Path | None = None
) -> TextAnonymizer:
    """The process's engine for this roster, key and model, built on first use and reused for every table."""
    # The cache is keyed by an HMAC of the roster fingerprint, never by the key itself.
    tag = hmac.new(key, roster.fingerprint.encode(), hashlib.sha256).hexdigest()
    cache_id = f"{tag}|{cache_dir.resolve()}|{ner_model_path}"
    with _ENGINES_LOCK:
        engine = _ENGINES.get(cache_id)
        if engine is None:
            engine = TextAnonymizer(roster, key, cache_dir, ner_model_path)
            if len(_ENGINES) >= _MAX_ENGINES:
                _ENGINES.pop(next(iter(_ENGINES)))
            _ENGINES[cache_id] = engine
        return engine
