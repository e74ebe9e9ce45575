"""A call that waits for a person: the example mailer's send_email needs approval in the
"reviewed" profile; a reviewer thread sees it and approves it.

    python examples/approvals.py          # Docker, as configured by SANDBOX_* variables
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from sandbox import Orchestrator, Settings

HERE = Path(__file__).parent


def main() -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as profiles:
        json.dump({"profiles": {"reviewed": {"approval": ["mailer.send_*"]}}}, profiles)
    mailer = {"command": sys.executable, "args": [str(HERE / "mcp_servers" / "mailer.py")]}
    orc = Orchestrator(
        Settings(profiles=Path(profiles.name)), mcp_config={"mcpServers": {"mailer": mailer}}
    )

    def reviewer() -> None:  # a person at a console, a chat bot, a web page...
        while not (waiting := orc.approvals.pending("alice")):
            time.sleep(0.1)
        a = waiting[0]
        print("asked:", f"{a.server}.{a.tool}", a.arguments, "-", a.reason)
        orc.approvals.decide("alice", a.id, approve=True, reason="looks right", by="console")

    threading.Thread(target=reviewer, daemon=True).start()
    try:
        with orc.session(owner="alice", profile="reviewed") as s:
            r = s.run(
                "from servers.mailer import send_email\n"
                "print(send_email(to='ops@example.com', subject='Hi', body='Hello'))"
            )
            print(r.stdout or r.stderr)
    finally:
        orc.close()
        Path(profiles.name).unlink()


if __name__ == "__main__":
    main()
