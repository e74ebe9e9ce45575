"""PII detection from many threads at once (THREATS L5): no shared scratch, same findings."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.pii import HYPERSCAN, Detector, MasterKeys, Tokenizer

TEXT = (
    "mail maria.gonzalez@example.com or call +1 415 555 0132; card 4111 1111 1111 1111; "
    "IBAN DE89 3704 0044 0532 0130 00. "
) * 200


@pytest.mark.skipif(not HYPERSCAN, reason="the re engine has no scratch to share")
def test_many_threads_scan_with_one_detector_and_agree() -> None:
    detector = Detector()
    expected = detector.detect(TEXT)
    barrier = threading.Barrier(16)

    def scan(_: int) -> list[object]:
        barrier.wait(10)
        return [detector.detect(TEXT) for _ in range(20)]

    with ThreadPoolExecutor(16) as pool:
        results = [r for batch in pool.map(scan, range(16)) for r in batch]
    assert len(results) == 320 and all(r == expected for r in results)


def test_tenants_tokenize_in_parallel_without_mixing_vaults() -> None:
    keys = MasterKeys({"k1": b"s" * 32}, "k1")
    detector = Detector()
    tokenizers = {f"s{i}": Tokenizer.for_session(keys, f"s{i}", detector) for i in range(8)}
    barrier = threading.Barrier(8)

    def work(sid: str) -> tuple[str, str, str]:
        barrier.wait(10)
        tok = tokenizers[sid]
        out = ""
        for i in range(50):
            out = tok.tokenize(f"{sid}-{i}@example.com and {TEXT[:120]}")
        return sid, out, tok.detokenize(out)

    with ThreadPoolExecutor(8) as pool:
        for sid, out, back in pool.map(work, tokenizers):
            assert "@example.com" not in out.split(" and ")[0]
            assert back.startswith(f"{sid}-49@example.com")
