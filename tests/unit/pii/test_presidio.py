"""The optional Presidio adapter plugs names (or any Presidio entity) into detection and tokens."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.pii import Detector, MasterKeys, Tokenizer

presidio_analyzer = pytest.importorskip("presidio_analyzer")


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import spacy
    from presidio_analyzer import AnalyzerEngine, PatternRecognizer
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    # No NER model can be downloaded here: a blank pipeline plus a deny-list recognizer stands
    # in for a name model, which exercises the same adapter path.
    path: Path = tmp_path_factory.mktemp("blank-en")
    spacy.blank("en").to_disk(path)
    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": str(path)}],
        }
    ).create_engine()
    engine = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    engine.registry.add_recognizer(
        PatternRecognizer(supported_entity="PERSON", deny_list=["Maria Gonzalez"])
    )
    return engine


def test_presidio_findings_join_the_built_in_ones_and_round_trip(analyzer) -> None:  # type: ignore[no-untyped-def]
    from sandbox.pii.presidio import presidio_detector

    det = Detector(extra=[presidio_detector(["PERSON"], analyzer=analyzer)])
    text = "Contact Maria Gonzalez at maria.gonzalez@example.com."
    assert [(f.entity, text[f.start : f.end]) for f in det.detect(text)] == [
        ("PERSON", "Maria Gonzalez"),
        ("EMAIL", "maria.gonzalez@example.com"),
    ]
    tok = Tokenizer.for_session(MasterKeys({"k1": os.urandom(32)}, "k1"), "s", det)
    out = tok.tokenize(text)
    assert out == "Contact [PERSON_1] at [EMAIL_1]."
    assert tok.detokenize(out) == text
