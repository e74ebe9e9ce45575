"""PII detection quality and speed on a labelled corpus, side by side with Presidio.

    python bench/pii_corpus.py --records 6000 --seed 7     # writes bench/results/pii_corpus.jsonl
    python bench/bench_pii.py [--corpus ...] [--no-presidio]

Quality: per-entity precision, recall and F1; a prediction is a true positive when it has the
gold entity and overlaps the gold span (each gold span counts once). Speed: MB/s on one core,
for one detect() call per record and for single strings of falling PII density (the corpus
records spread through more and more of their own filler prose, down to none). Presidio runs its pattern recognizers
(the blank spaCy pipeline `spacy.blank("en")` saved to disk is its NLP engine: no model can be
downloaded here, so its name/location recognizers find nothing and are not compared).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sandbox.pii import ENTITIES, HYPERSCAN, Detector

PRESIDIO_MAP = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
                "IBAN_CODE": "IBAN", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS"}  # fmt: skip

Span = tuple[int, int, str]


def score(
    gold: list[list[Span]], pred: list[list[Span]]
) -> dict[str, tuple[float, float, float, int]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for g_spans, p_spans in zip(gold, pred, strict=True):
        used: set[int] = set()
        for ps, pe, pk in p_spans:
            hit = next(
                (
                    i
                    for i, (gs, ge, gk) in enumerate(g_spans)
                    if i not in used and gk == pk and ps < ge and gs < pe
                ),
                None,
            )
            if hit is None:
                fp[pk] += 1
            else:
                used.add(hit)
                tp[pk] += 1
        for i, (_, _, gk) in enumerate(g_spans):
            if i not in used:
                fn[gk] += 1
    out = {}
    for ent in ENTITIES:
        p = tp[ent] / (tp[ent] + fp[ent]) if tp[ent] + fp[ent] else 0.0
        r = tp[ent] / (tp[ent] + fn[ent]) if tp[ent] + fn[ent] else 0.0
        out[ent] = (p, r, 2 * p * r / (p + r) if p + r else 0.0, tp[ent] + fn[ent])
    return out


def timed(fn: Callable[[Detector], object], engine: str, repeat: int = 3) -> float:
    """Best CPU time of `repeat` runs, each with a new Detector (no validation cache carried over)."""
    best = float("inf")
    for _ in range(repeat):
        det = Detector(engine=engine)
        start = time.process_time()
        fn(det)
        best = min(best, time.process_time() - start)
    return best


def presidio_engine():  # type: ignore[no-untyped-def]
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    path = Path(tempfile.mkdtemp(prefix="blank-en-"))
    spacy.blank("en").to_disk(path)
    conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": str(path)}]}
    nlp = NlpEngineProvider(nlp_configuration=conf).create_engine()
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", type=Path, default=Path("bench/results/pii_corpus.jsonl"))
    ap.add_argument("--no-presidio", action="store_true")
    args = ap.parse_args()
    recs = [json.loads(line) for line in args.corpus.read_text().splitlines()]
    texts = [r["text"] for r in recs]
    gold = [[(s, e, k) for s, e, k in r["spans"]] for r in recs]
    size_mb = sum(len(t.encode()) for t in texts) / 1e6

    rows: dict[str, dict[str, tuple[float, float, float, int]]] = {}
    speed: dict[str, dict[str, float]] = {}
    rnd = random.Random(1)
    prose = [t.split(". ", 1)[0] + ". " for t in texts]  # the records' filler sentences
    # The same records spread through more and more plain prose: PII density falls.
    mixes = {"dense (records alone)": "\n".join(texts)}
    for k in (8, 30, 100):
        mixes[f"1 record : {k} sentences"] = "".join(
            t + " " + "".join(rnd.choice(prose) for _ in range(k)) for t in texts[:2000]
        )
    mixes["no PII (prose only)"] = "".join(rnd.choice(prose) for _ in range(60_000))
    for engine in (["hyperscan"] if HYPERSCAN else []) + ["re"]:
        det = Detector(engine=engine)
        pred = [[(f.start, f.end, f.entity) for f in det.detect(t)] for t in texts]
        rows[f"sandbox.pii ({engine})"] = score(gold, pred)
        speed[f"sandbox.pii ({engine})"] = {
            "one call per record": size_mb / timed(lambda d: [d.detect(t) for t in texts], engine),
            **{
                name: len(text.encode()) / 1e6 / timed(lambda d, x=text: d.detect(x), engine)
                for name, text in mixes.items()
            },
        }
    if not args.no_presidio:
        engine = presidio_engine()

        def run() -> list[list[Span]]:
            out = []
            for t in texts:
                res = engine.analyze(t, language="en")
                out.append(
                    [
                        (r.start, r.end, PRESIDIO_MAP[r.entity_type])
                        for r in res
                        if r.entity_type in PRESIDIO_MAP
                    ]
                )
            return out

        start = time.process_time()
        pred = run()
        elapsed = time.process_time() - start
        rows["Presidio 2.2 (pattern recognizers)"] = score(gold, pred)
        sample = mixes["1 record : 30 sentences"][:1_000_000]
        start = time.process_time()
        engine.analyze(sample, language="en")
        sparse_s = time.process_time() - start
        speed["Presidio 2.2 (pattern recognizers)"] = {
            "one call per record": size_mb / elapsed,
            "1 record : 30 sentences": len(sample.encode()) / 1e6 / sparse_s,
        }

    print(
        f"# PII detection: {len(recs)} records, {size_mb:.2f} MB, "
        f"{sum(len(g) for g in gold)} labelled entities\n"
    )
    print("| detector | " + " | ".join(ENTITIES) + " |")
    print("|---|" + "---:|" * len(ENTITIES))
    for name, sc in rows.items():
        cells = []
        for ent in ENTITIES:
            p, r, f1, _n = sc[ent]
            cells.append(
                "n/a"
                if name.startswith("Presidio") and ent == "SECRET"
                else f"{f1:.3f} ({p:.2f}/{r:.2f})"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        "\ncells: F1 (precision/recall); gold counts: "
        + ", ".join(f"{e} {rows[next(iter(rows))][e][3]}" for e in ENTITIES)
    )
    cols = list(next(iter(speed.values())))
    print("\n# throughput, MB/s on one core (CPU time, best of 3; Presidio: one run)\n")
    print("| detector | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, sp in speed.items():
        print(f"| {name} | " + " | ".join(f"{sp[c]:.1f}" if c in sp else "-" for c in cols) + " |")


if __name__ == "__main__":
    main()
