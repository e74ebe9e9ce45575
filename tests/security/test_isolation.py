"""Filesystem, session and network boundaries (THREATS C, D)."""

from __future__ import annotations

import hashlib
import time

import pytest

from sandbox import FileTypeError, Orchestrator, Session, UnsafePathError
from tests.security.conftest import probe


@pytest.mark.parametrize(
    "target", ["/etc/passwd", "../../../etc/shadow", "/proc/1/root/etc/passwd"]
)
def test_a_planted_symlink_is_never_followed_by_download(session: Session, target: str) -> None:
    r = session.run(f"import os; os.symlink({target!r}, 'out.txt')")
    assert r.exit_code == 0
    with pytest.raises(FileTypeError):
        session.download("out.txt")


def test_a_symlinked_folder_is_not_walked_by_download_or_upload(session: Session) -> None:
    session.run("import os; os.symlink('/etc', 'etc')")
    with pytest.raises(FileTypeError):
        session.download("etc/passwd")
    with pytest.raises(FileTypeError):
        session.upload("etc/pwned", b"x")


def test_a_planted_fifo_is_refused_quickly(session: Session) -> None:
    session.run("import os; os.mkfifo('pipe')")
    start = time.monotonic()
    with pytest.raises(FileTypeError):
        session.download("pipe")
    assert time.monotonic() - start < 5


def test_a_hardlinked_file_is_refused(session: Session) -> None:
    session.run("open('a', 'w').write('x'); import os; os.link('a', 'b')")
    with pytest.raises(FileTypeError):
        session.download("b")


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/../../b", "a\x00b", ""])
def test_traversal_paths_are_rejected_everywhere(session: Session, bad: str) -> None:
    for call in (
        session.download,
        session.delete_file,
        lambda p: session.upload(p, b"x"),
        session.read_skill,
        lambda p: session.save_skill(p, b"x"),
    ):
        with pytest.raises(UnsafePathError):
            call(bad)


def test_upload_replaces_a_planted_link_instead_of_writing_through_it(session: Session) -> None:
    session.run("import os; os.symlink('/etc/hostname', 'target')")
    session.upload("target", b"mine")
    assert (
        session.run("import os; print(os.path.islink('target'), open('target').read())").stdout
        == "False mine\n"
    )


def test_one_session_cannot_see_another_sessions_workspace(orc: Orchestrator) -> None:
    with orc.session(owner="alice") as a, orc.session(owner="bob") as b:
        a.run("open('secret.txt', 'w').write('alice-only')")
        got = probe(
            b,
            """
import json, os
roots = []
for p in os.listdir('/proc'):
    if p.isdigit():
        try: roots += os.listdir(f'/proc/{p}/root/workspace')
        except OSError: pass
print(json.dumps({"ws": os.listdir('/workspace'), "roots": roots}))
""",
        )
        assert "secret.txt" not in got["ws"] and "secret.txt" not in got["roots"]
        with orc.session(owner="alice") as a2:  # same owner, new session: a new workspace too
            assert "secret.txt" not in probe(
                a2, "import json, os; print(json.dumps(os.listdir('.')))"
            )


def test_skills_persist_for_their_owner_and_are_invisible_to_others(orc: Orchestrator) -> None:
    with orc.session(owner="alice") as a:
        a.save_skill("etl/clean.py", b"def clean(x): return x.strip()\n")
        before = hashlib.sha256(a.read_skill("etl/clean.py")).hexdigest()
    with orc.session(owner="alice") as a2:
        r = a2.run(
            "import sys; sys.path.insert(0, '/skills/etl'); from clean import clean; print(clean('  ok '))"
        )
        assert r.stdout == "ok\n"
        a2.run("import os\ntry: os.remove('/skills/etl/clean.py')\nexcept OSError: pass")
        assert hashlib.sha256(a2.read_skill("etl/clean.py")).hexdigest() == before
    with orc.session(owner="mallory") as m:
        assert probe(m, "import json, os; print(json.dumps(os.listdir('/skills')))") == []
        assert m.list_skills() == []


def test_mount_sources_name_no_tenant(orc: Orchestrator) -> None:
    with orc.session(owner="tenant-acme-corp") as s:
        info = s.run("print(open('/proc/self/mountinfo').read())").stdout
        assert "tenant-acme-corp" not in info and s.id not in info
        ws = [line for line in info.splitlines() if " /workspace " in line]
        assert ws and "nosuid" in ws[0] and "nodev" in ws[0]


def test_no_network_egress_tcp_or_dns(session: Session) -> None:
    got = probe(
        session,
        """
import errno, json, socket
out = {}
for host, port in [('1.1.1.1', 443), ('172.17.0.1', 80), ('169.254.169.254', 80), ('2606:4700::1111', 443)]:
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam)
    s.settimeout(2)
    try:
        s.connect((host, port)); out[host] = 'OK'
    except OSError as e:
        out[host] = errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()
try:
    socket.getaddrinfo('leak-3c9e.exfil.test', 80); out['dns'] = 'OK'
except socket.gaierror:
    out['dns'] = 'failed'
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b'x', ('8.8.8.8', 53)); out['udp'] = 'OK'
except OSError as e:
    out['udp'] = errno.errorcode[e.errno]
print(json.dumps(out))
""",
    )
    assert got.pop("dns") == "failed"
    for dest, result in got.items():
        assert result in ("ENETUNREACH", "EHOSTUNREACH", "EADDRNOTAVAIL"), f"{dest}: {result}"
