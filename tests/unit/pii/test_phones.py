"""Phone numbers as written in many regions; what only context may confirm; what never is one."""

from __future__ import annotations

import pytest

from sandbox.exceptions import InvalidInputError
from sandbox.pii import HYPERSCAN, Detector, default_recognizers, detect
from sandbox.pii.phones import PhoneContext, PhoneRules, Verdict

ENGINES = ["re", *(["hyperscan"] if HYPERSCAN else [])]

# The issue's reproductions first: other regions' national formats, extensions, dots, and
# numbers `phonenumbers` does not call valid (no carrier owns the range).
FOUND_ALONE = [
    "0114 496 0825",
    "04 93 37 78 76",
    "+49(0)7316541840",
    "001-744-480-5743x213",
    "(584)550-4976x097",
    "675.861.3781",
    "382-868-0725",
    "+1 488-555-0153",
    "+1-780-563-6083x7783",
    "206.269.0743x9150",
    "(0161) 4960066",
    "+44(0)28 9018631",
    "+33 (0)1 41 63 60 83",
    "070-6360-8377",
    "+55 61 9141-7776",
    "8 (066) 907-43-91",
    "+90(066)907-4391x500",
    "(+57) 303 915 00 08",
    "+(370) 39150008",
    "00420 702 914 177",
    "+61.437.406.812",
    "1 (786) 834-4978",
    "020 668-1241",
    "08-170 669 07",
    "555-0134 ext. 12",
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("number", FOUND_ALONE)
def test_a_phone_number_is_found_whole_without_any_context(engine: str, number: str) -> None:
    text = f"see {number} today" if "ext" not in number else f"call {number} today"
    found = Detector(engine=engine).detect(text)
    assert [(f.entity, text[f.start : f.end]) for f in found] == [("PHONE", number)]


def test_extensions_are_kept_in_the_normalized_value() -> None:
    (f,) = detect("Office: 001-744-480-5743x213.")
    assert f.value == "+17444805743;ext=213"


@pytest.mark.parametrize(
    "text",
    [
        "Tel: 609 141 777",
        "phone: 0493377876",
        '{"homePhone": "91 41 77 76"}',
        "Telefonnummer 3533 7406",
        "M: 0493377876",
        "her cell is 8914177",
        "my number is 0577957335",
    ],
)
def test_ambiguous_numbers_count_after_a_phone_word(text: str) -> None:
    assert [f.entity for f in detect(text)] == ["PHONE"]


@pytest.mark.parametrize(
    "text",
    [
        "609 141 777",
        "Teller 609 141 777",
        "tel. 0114 496 0825, order 1234567",
        "syscall 0493377876",
        "order number 0577957335",
    ],
)
def test_ambiguous_numbers_without_a_phone_word_are_left_alone(text: str) -> None:
    assert [f for f in detect(text) if text[f.start : f.end] != "0114 496 0825"] == []


def test_a_phone_column_in_a_csv_confirms_its_cells_only() -> None:
    text = (
        'id,name,"Phone Number",zip\n1,"Doe, Ann",609 141 777,12345678\n2,Bo,0493377876,87654321\n'
    )
    found = [text[f.start : f.end] for f in detect(text)]
    assert found == ["609 141 777", "0493377876"]


def test_a_phone_column_in_a_markdown_table_confirms_its_cells() -> None:
    text = "Contacts:\n| Name | Mobile | Ref |\n|---|---|---|\n| Ann | 91 41 77 76 | 12345678 |\n"
    assert [text[f.start : f.end] for f in detect(text)] == ["91 41 77 76"]


HARD_NEGATIVES = [
    "version 2.4.1 and build 1.0.0.12",
    "at 2024-03-15 10:30:00 UTC, 15/03/2024, 15.03.2024, 03 08 2007",
    "price $1,234.56 or 1 234,56 €, total 12345678",
    "order ORD-2024-001234, #123456789, PO 4500012345",
    "id 123e4567-e89b-12d3-a456-426614174000, sha 3f786850e387550fdab836ed7e6dc881de23001b",
    "zip 94107, 75008 Paris, SW1A 1AA, 1012 AB",
    "coordinates 48.8566, 2.3522; ratio 0.3333333333",
    "ssn-like 000-12-3456",
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    "Partially addressable: 01 02 03 04 05 06 07",
    "procs  r  b   swpd   free\n 5  0      0 21611896  29592",
    "ISBN 978-3-16-148410-0",
    "call stack depth 12; ring buffer 4096 1024 2048 8192",
    "Total: 1 234 567 items, 12 345 678 bytes",
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_numbers_that_are_not_phones_are_left_alone(engine: str, text: str) -> None:
    assert Detector(engine=engine).detect(text) == []


def test_weak_shapes_come_back_as_weak_verdicts() -> None:
    rules = PhoneRules()
    weak = rules.validate("609 141 777")
    assert isinstance(weak, Verdict) and weak.weak
    strong = rules.validate("0114 496 0825")
    assert strong == "+441144960825" and not isinstance(strong, Verdict)


def test_a_number_glued_to_another_after_a_space_is_cut_at_it() -> None:
    verdict = PhoneRules().validate("0114 496 0825 2024")
    assert isinstance(verdict, Verdict) and verdict.length == len("0114 496 0825")


def test_the_first_region_decides_between_regions_sharing_a_format() -> None:
    fr = Detector(default_recognizers("FR", regions=["FR", "BE"])).detect("ligne 04 93 37 78 76")
    be = Detector(default_recognizers("BE", regions=["BE", "FR"])).detect("ligne 04 93 37 78 76")
    assert [f.value for f in fr] == ["+33493377876"]
    assert [f.value for f in be] == ["+32493377876"]


def test_an_unknown_region_is_refused_at_construction() -> None:
    with pytest.raises(InvalidInputError, match="XX"):
        PhoneRules(["XX"])


def test_context_looks_back_on_its_own_line_only() -> None:
    text = "phone\n609 141 777"
    assert PhoneContext(text)(text.index("609")) is False
