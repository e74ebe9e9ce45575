"""Optional adapter: Presidio's analyzer as an extra detector, for names and addresses.

    pip install 'sandbox[presidio]'   (and a spaCy model with NER for PERSON and LOCATION)

    from sandbox.pii.presidio import presidio_detector
    Detector(extra=[presidio_detector(["PERSON", "LOCATION"], model="en_core_web_lg")])

Findings keep Presidio's entity names (PERSON, LOCATION...), so tokens read `[PERSON_1]`.
Presidio is slow (about 0.1 MB/s here for its pattern recognizers alone); use it where names
matter more than throughput.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sandbox.pii.detect import Finding


def presidio_detector(
    entities: Iterable[str] = ("PERSON", "LOCATION"),
    model: str = "en_core_web_lg",
    analyzer: Any = None,
    threshold: float = 0.5,
    language: str = "en",
) -> Callable[[str], list[Finding]]:
    """A detector over Presidio's AnalyzerEngine (built from `model`, or the one given).

    Raises:
        ImportError: presidio-analyzer is not installed.
    """
    if analyzer is None:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        conf = {
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": language, "model_name": model}],
        }
        nlp = NlpEngineProvider(nlp_configuration=conf).create_engine()
        analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=[language])
    wanted = list(entities)

    def detect(text: str) -> list[Finding]:
        results = analyzer.analyze(
            text, language=language, entities=wanted, score_threshold=threshold
        )
        return [Finding(r.start, r.end, r.entity_type, text[r.start : r.end]) for r in results]

    return detect
