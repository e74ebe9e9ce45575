"""PII detection quality and speed on the labelled corpus, side by side with Presidio.

    python bench/bench_pii.py [--parts tuning heldout] [--no-presidio] [--repeat 3]

The corpus is bench/corpus/pii_{tuning,heldout}.jsonl (bench/pii_corpus.py writes them; see
its docstring for what is in each part). Quality: per-entity precision, recall and F1; a
prediction is a true positive when it has the gold entity and overlaps the gold span (each
gold span counts once); the minimum F1 over the entities is what the held-out bar is about.

Presidio runs its pattern recognizers and its phone recognizer (phonenumbers' matcher over
its default regions), with `spacy.blank("en")` saved to disk as its NLP engine: no spaCy model
can be downloaded here, so its NER (names, places) finds nothing, which none of our entities
need. Its context words still raise scores; the default threshold (0) keeps every finding.

Speed: MB/s of CPU time on one core (best of `--repeat`, a new Detector each time so no
validation cache is carried over) for the corpus records one call each, the records joined
(dense), and texts where one line in N holds PII and the other lines are PII-free lines of
the same corpus (prose, logs, program output), down to none.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from pii_corpus import ENTITIES, load

from sandbox.pii import HYPERSCAN, Detector

PRESIDIO_MAP = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
                "IBAN_CODE": "IBAN", "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS"}  # fmt: skip
CORPUS = Path(__file__).parent / "corpus"

Span = tuple[int, int, str]
Scores = dict[str, tuple[float, float, float, int]]


def score(gold: list[list[Span]], pred: list[list[Span]]) -> Scores:
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


def min_f1(sc: Scores, entities: tuple[str, ...] = ENTITIES) -> float:
    return min(sc[e][2] for e in entities if sc[e][3])


def timed(fn: Callable[[Detector], object], engine: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        det = Detector(engine=engine)
        start = time.process_time()
        fn(det)
        best = min(best, time.process_time() - start)
    return best


def presidio_engine() -> Any:  # presidio-analyzer ships no type information
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


def presidio_spans(engine: Any, texts: list[str]) -> list[list[Span]]:
    return [
        [
            (r.start, r.end, PRESIDIO_MAP[r.entity_type])
            for r in engine.analyze(t, language="en")
            if r.entity_type in PRESIDIO_MAP
        ]
        for t in texts
    ]


def mixes(texts: list[str], gold: list[list[Span]]) -> dict[str, str]:
    """The dense corpus, and texts where one line in N holds PII: the other lines are prose
    (sentences of the corpus without digits or `@`) or program output and logs (the corpus's
    PII-free lines, full of numbers, dates, ids and addresses)."""
    rnd = random.Random(1)
    pii_lines, program, prose = [], [], []
    for text, spans in zip(texts, gold, strict=True):
        pos = 0
        for line in text.split("\n"):
            end = pos + len(line)
            has_pii = any(s < end and pos < e for s, e, _ in spans)
            (pii_lines if has_pii else program).append(line)
            pos = end + 1
        prose += [
            s.strip() + "." for s in text.split(". ") if 30 < len(s) < 200 and not any(
                c.isdigit() or c in "@=:{}[]|,;\t\n" for c in s)
        ]  # fmt: skip
    program = [c for c in program if c.strip()]
    out = {"dense (records joined)": "\n".join(texts)}
    for kind, filler in (("prose", prose), ("program output", program)):
        for n in (8, 30, 100):
            out[f"1 line of {n} ({kind})"] = "\n".join(
                "\n".join([p, *(rnd.choice(filler) for _ in range(n - 1))])
                for p in pii_lines[:3000]
            )
        out[f"no PII ({kind})"] = "\n".join(rnd.choice(filler) for _ in range(40_000))
    return out


def print_quality(rows: dict[str, Scores], title: str) -> None:
    print(f"\n## {title}\n")
    print("| detector | " + " | ".join(ENTITIES) + " | min F1 |")
    print("|---|" + "---:|" * (len(ENTITIES) + 1))
    for name, sc in rows.items():
        presidio = name.startswith("Presidio")
        cells = [
            "n/a"
            if presidio and e == "SECRET"
            else f"{sc[e][2]:.3f} ({sc[e][0]:.2f}/{sc[e][1]:.2f})"
            for e in ENTITIES
        ]
        low = min_f1(sc, tuple(e for e in ENTITIES if not (presidio and e == "SECRET")))
        print(f"| {name} | " + " | ".join(cells) + f" | {low:.3f} |")
    first = next(iter(rows.values()))
    print(
        "\ncells: F1 (precision/recall); gold: " + ", ".join(f"{e} {first[e][3]}" for e in ENTITIES)
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--parts", nargs="+", default=["tuning", "heldout"])
    ap.add_argument("--no-presidio", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    engines = (["hyperscan"] if HYPERSCAN else []) + ["re"]
    presidio = None if args.no_presidio else presidio_engine()
    for part in args.parts:
        texts, gold = load(CORPUS / f"pii_{part}.jsonl")
        size = sum(len(t.encode()) for t in texts)
        rows: dict[str, Scores] = {}
        for engine in engines:
            det = Detector(engine=engine)
            rows[f"sandbox.pii ({engine})"] = score(
                gold, [[(f.start, f.end, f.entity) for f in det.detect(t)] for t in texts]
            )
        if presidio is not None:
            rows["Presidio (patterns + phone)"] = score(gold, presidio_spans(presidio, texts))
        n = sum(map(len, gold))
        print_quality(rows, f"{part}: {len(texts)} records, {size / 1e6:.2f} MB, {n} labelled "
                      f"values, one per {size / n:.0f} bytes")  # fmt: skip
    texts, gold = load(CORPUS / f"pii_{args.parts[0]}.jsonl")
    print_speed(texts, gold, engines, presidio, args.repeat)


def print_speed(
    texts: list[str], gold: list[list[Span]], engines: list[str], presidio: Any, repeat: int
) -> None:
    size_mb = sum(len(t.encode()) for t in texts) / 1e6
    speed: dict[str, dict[str, float]] = {}
    docs = mixes(texts, gold)
    for engine in engines:
        speed[f"sandbox.pii ({engine})"] = {
            "one call per record": size_mb / timed(lambda d: [d.detect(t) for t in texts], engine, repeat),
            **{
                name: len(text.encode()) / 1e6 / timed(lambda d, x=text: d.detect(x), engine, repeat)
                for name, text in docs.items()
            },
        }  # fmt: skip
    if presidio is not None:
        sample = texts[:500]
        start = time.process_time()
        presidio_spans(presidio, sample)
        per_record = sum(len(t.encode()) for t in sample) / 1e6 / (time.process_time() - start)
        sparse = docs["1 line of 30 (prose)"][:300_000]
        start = time.process_time()
        presidio.analyze(sparse, language="en")
        speed["Presidio (patterns + phone)"] = {
            "one call per record": per_record,
            "1 line of 30 (prose)": len(sparse.encode()) / 1e6 / (time.process_time() - start),
        }
    cols = list(next(iter(speed.values())))
    print(f"\n## Throughput, MB/s of CPU time on one core (best of {repeat}; Presidio: one run)\n")
    print("| detector | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, sp in speed.items():
        print(f"| {name} | " + " | ".join(f"{sp[c]:.3g}" if c in sp else "-" for c in cols) + " |")
    dense = docs["dense (records joined)"]
    print(f"\ndense: {len(dense.encode()) / sum(map(len, gold)):.0f} bytes per labelled value")


if __name__ == "__main__":
    main()
