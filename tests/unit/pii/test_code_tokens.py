"""Tokens in code: resolved where the box held the value already, never for tool data."""

from __future__ import annotations

from sandbox import Orchestrator
from sandbox.pii import MasterKeys, Tokenizer
from sandbox.pii.code import resolve_in_code

EMAIL = "maria.gonzalez@example.com"


def test_tokens_of_values_the_box_printed_resolve_in_code() -> None:
    tok = Tokenizer.for_session(MasterKeys({"k": b"k" * 32}, "k"), "s1")
    shown = tok.tokenize(f"contact {EMAIL}")
    token = shown.removeprefix("contact ")
    assert resolve_in_code(tok, f"x == {token!r}") == f"x == {EMAIL!r}"


def test_tokens_of_tool_results_stay_tokens_in_code() -> None:
    tok = Tokenizer.for_session(MasterKeys({"k": b"k" * 32}, "k"), "s1")
    result = tok.tokenize({"email": "ceo@corp.example"}, origin="crm.get_customer")
    token = result["email"]
    assert resolve_in_code(tok, f"send({token!r})") == f"send({token!r})"
    # Unknown tokens and other text are left alone; no tokenizer, nothing changes.
    assert (
        resolve_in_code(tok, "a = '[EMAIL_99]' [not a token]") == "a = '[EMAIL_99]' [not a token]"
    )
    assert resolve_in_code(None, f"x = {token!r}") == f"x = {token!r}"


def test_code_written_from_a_preview_finds_the_rows_it_meant(local_orc: Orchestrator) -> None:
    with local_orc.session(owner="alice") as s:
        s.upload("people.csv", f"name,email\nmaria,{EMAIL}\nbob,bob@example.org\n".encode())
        preview = s.read_text("people.csv")
        assert EMAIL not in preview
        token = preview.splitlines()[1].split(",")[1]
        code = (
            "import csv\n"
            "rows = [r for r in csv.DictReader(open('people.csv')) "
            f"if r['email'] == {token!r}]\n"
            "print(len(rows), rows[0]['email'])"
        )
        r = s.run(code)
        assert r.exit_code == 0, r.stderr
        assert r.stdout == f"1 {token}\n"  # found; and shown to the model as its token again
        c = s.run_command(["grep", "-c", token, "people.csv"])
        assert c.stdout.strip() == "1", (c.stdout, c.stderr)


def test_file_names_are_tokenized_in_listings_and_resolved_in_paths(
    local_orc: Orchestrator,
) -> None:
    with local_orc.session(owner="alice") as s:
        s.upload(f"invoices/{EMAIL}.txt", b"paid")
        s.run(f"open('{EMAIL}.log', 'w').write('x')")
        names = [e.path for e in s.list_files()]
        assert not any("maria" in n for n in names), names
        shown = next(n for n in names if n.startswith("invoices/") and n != "invoices")
        assert s.download(shown) == b"paid"  # the model names it by what it saw
        assert s.read_text(shown) == "paid"
        s.delete_file(shown)
        assert not any(n == shown for n in (e.path for e in s.list_files()))
