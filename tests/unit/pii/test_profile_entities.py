"""A profile narrows the PII entities its sessions tokenize; it never widens them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.conftest import MakeOrc

LINE = "print('maria@example.com', '+1 415-555-0132')"


def test_a_profile_narrows_the_entities_and_cannot_widen_them(
    make_orc: MakeOrc, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles.json"
    profiles.write_text(
        json.dumps({"profiles": {"emails": {"pii_entities": ["EMAIL"]}, "more": {}}})
    )
    orc = make_orc(profiles=profiles)
    with orc.session(owner="a", profile="emails") as s:
        assert s.run(LINE).stdout == "[EMAIL_1] +1 415-555-0132\n"
    with orc.session(owner="a", profile="more") as s:
        assert s.run(LINE).stdout == "[EMAIL_1] [PHONE_1]\n"
    narrow = make_orc(profiles=profiles, pii={"entities": ["PHONE"]})
    with narrow.session(owner="a", profile="emails") as s:  # EMAIL is not the deployment's
        assert s.run(LINE).stdout == "maria@example.com +1 415-555-0132\n"
