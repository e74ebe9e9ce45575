"""Privilege and escape probes from inside the box (THREATS B, E): every one must fail."""

from __future__ import annotations

import pytest

from sandbox import Session
from tests.security.conftest import probe

SYSCALL = """
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return "OK" if r != -1 else errno.errorcode[ctypes.get_errno()]
"""

# x86_64 numbers; the call must be refused by seccomp (EPERM) or be missing (ENOSYS).
DENIED_SYSCALLS = {
    "io_uring_setup": (425, 8, 0),
    "io_uring_enter": (426, 0, 0, 0, 0, 0, 0),
    "io_uring_register": (427, 0, 0, 0, 0),
    "bpf": (321, 0, 0, 0),
    "userfaultfd": (323, 0),
    "perf_event_open": (298, 0, 0, -1, -1, 0),
    "keyctl": (250, 0, 0, 0, 0, 0),
    "add_key": (248, 0, 0, 0, 0, 0),
    "request_key": (249, 0, 0, 0, 0),
    "mount": (165, 0, 0, 0, 0, 0),
    "umount2": (166, 0, 0),
    "unshare_newuser": (272, 0x10000000),
    "unshare_newns": (272, 0x00020000),
    "setns": (308, 0, 0),
    "ptrace_attach_pid1": (101, 16, 1, 0, 0),
    "process_vm_readv": (310, 1, 0, 0, 0, 0, 0),
    "init_module": (175, 0, 0, 0),
    "finit_module": (313, 0, 0, 0),
    "kexec_load": (246, 0, 0, 0, 0),
    "chroot": (161, 0),
    "pivot_root": (155, 0, 0),
    "open_by_handle_at": (304, 0, 0, 0),
    "syslog": (103, 3, 0, 0),
    "reboot": (169, 0, 0, 0, 0),
    "swapon": (167, 0, 0),
    "acct": (163, 0),
    "quotactl": (179, 0, 0, 0, 0),
    "clone3": (435, 0, 0),
}


@pytest.fixture(scope="module")
def posture_session(orc):  # type: ignore[no-untyped-def]
    with orc.session(owner="prober") as s:
        yield s


def test_dangerous_syscalls_are_refused_from_inside(posture_session: Session) -> None:
    calls = ",".join(f"{name!r}: sc{args!r}" for name, args in DENIED_SYSCALLS.items())
    got = probe(posture_session, SYSCALL + f"print(json.dumps({{{calls}}}))")
    for name, result in got.items():
        assert result in ("EPERM", "ENOSYS"), f"{name} returned {result}"
    assert got["clone3"] == "ENOSYS"  # libc falls back to clone, whose flags seccomp can check


def test_identity_capabilities_seccomp_and_no_new_privs(posture_session: Session) -> None:
    status = probe(
        posture_session,
        """
import json
fields = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
print(json.dumps({k: v.split() for k, v in fields.items()}))
""",
    )
    assert status["Uid"] == ["1000"] * 4 and status["Gid"] == ["1000"] * 4
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap][0], 16) == 0, cap
    assert status["NoNewPrivs"] == ["1"] and status["Seccomp"] == ["2"]


def test_raw_and_exotic_sockets_are_refused(posture_session: Session) -> None:
    got = probe(
        posture_session,
        """
import errno, json, socket
out = {}
for name, args in {"packet": (17, 3, 0), "inet_raw": (2, 3, 1), "vsock": (40, 1, 0), "alg": (38, 5, 0)}.items():
    try:
        socket.socket(*args).close(); out[name] = "OK"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
out["interfaces"] = [n for _, n in socket.if_nameindex()]
print(json.dumps(out))
""",
    )
    assert got.pop("interfaces") == ["lo"]
    for name, result in got.items():
        assert result in ("EPERM", "EACCES", "EAFNOSUPPORT"), f"{name}: {result}"


def test_root_filesystem_and_system_files_are_read_only(posture_session: Session) -> None:
    got = probe(
        posture_session,
        """
import errno, glob, json, os
out = {}
for path in ['/etc/passwd', '/bin/sh', '/usr/bin/python3', '/var/tmp/x', '/home/sandboxuser/x', '/x',
             '/proc/sys/kernel/core_pattern', '/proc/sysrq-trigger'] + glob.glob('/usr/lib/python3*/os.py'):
    try:
        with open(path, 'a') as f: f.write('pwned')
        out[path] = 'OK'
    except OSError as e:
        out[path] = errno.errorcode[e.errno]
print(json.dumps(out))
""",
    )
    for path, result in got.items():
        assert result in ("EROFS", "EACCES", "EPERM", "ENOENT"), f"{path}: {result}"
        if not path.startswith("/proc"):
            assert result != "ENOENT" or path.startswith("/home"), path


def test_no_setuid_files_in_the_image_and_no_su_or_sudo(posture_session: Session) -> None:
    got = probe(
        posture_session,
        """
import json, os, stat, shutil
found = []
for root, dirs, files in os.walk('/'):
    if root in ('/proc', '/sys', '/dev') or root.startswith(('/proc/', '/sys/')):
        dirs[:] = []; continue
    for f in files:
        try:
            m = os.lstat(os.path.join(root, f)).st_mode
        except OSError:
            continue
        if stat.S_ISREG(m) and m & (stat.S_ISUID | stat.S_ISGID):
            found.append(os.path.join(root, f))
print(json.dumps({"setid": found, "su": shutil.which('su'), "sudo": shutil.which('sudo')}))
""",
        timeout=30,
    )
    assert got == {"setid": [], "su": None, "sudo": None}


def test_no_device_nodes_beyond_the_safe_set_and_mknod_fails(posture_session: Session) -> None:
    got = probe(
        posture_session,
        """
import errno, json, os, stat
try:
    os.mknod('/tmp/sda', stat.S_IFBLK | 0o600, os.makedev(8, 0)); mk = 'OK'
except OSError as e:
    mk = errno.errorcode[e.errno]
print(json.dumps({"dev": sorted(os.listdir('/dev')), "mknod": mk}))
""",
    )
    assert got["mknod"] == "EPERM"
    allowed = {
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "pts",
        "shm",
        "fd",
        "stdin",
        "stdout",
        "stderr",
        "ptmx",
        "console",
        "mqueue",
        "core",
    }
    assert set(got["dev"]) <= allowed, set(got["dev"]) - allowed


def test_host_secrets_in_proc_and_sys_are_masked(posture_session: Session) -> None:
    got = probe(
        posture_session,
        """
import errno, json
out = {}
for path in ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug', '/sys/firmware',
             '/proc/kallsyms']:
    try:
        data = open(path, 'rb').read(4096)
        out[path] = 'EMPTY' if not data.strip() else ('ZEROS' if path.endswith('kallsyms') and
                    all(l.startswith(b'0000000000000000') for l in data.splitlines()[:50]) else 'DATA')
    except OSError as e:
        out[path] = errno.errorcode[e.errno]
print(json.dumps(out))
""",
    )
    for path, result in got.items():
        assert result != "DATA", f"{path} is readable"


def test_no_docker_socket_no_host_env_and_a_private_pid_namespace(
    posture_session: Session, canary: str
) -> None:
    got = probe(
        posture_session,
        """
import json, os, socket
def reach(port):
    s = socket.socket()
    try:
        s.settimeout(1); s.connect(('127.0.0.1', port)); return True
    except OSError:
        return False
    finally:
        s.close()
print(json.dumps({
    "sockets": [p for p in ['/var/run/docker.sock', '/run/docker.sock', '/run/containerd/containerd.sock']
                if os.path.exists(p)],
    "tcp": [p for p in (2375, 2376) if reach(p)],
    "env": dict(os.environ),
    "pid1_env": open('/proc/1/environ', 'rb').read().decode('latin-1'),
    "pids": sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),
    "pid1": open('/proc/1/cmdline', 'rb').read().split(b'\\0')[0].decode(),
    "hostname": socket.gethostname(),
    "tmp": os.listdir('/tmp'),
    "cwd": os.getcwd(),
    "fds": sorted(os.listdir('/proc/self/fd')),
}))
""",
    )
    assert got["sockets"] == [] and got["tcp"] == []
    allowed_env = {
        "PATH",
        "HOSTNAME",
        "HOME",
        "LANG",
        "PYTHONDONTWRITEBYTECODE",
        "XDG_CACHE_HOME",
        "MPLCONFIGDIR",
        "GPG_KEY",
        "PYTHON_VERSION",
        "PYTHON_SHA256",
        "PYTHON_PIP_VERSION",
        "PYTHON_SETUPTOOLS_VERSION",
        "PYTHON_GET_PIP_URL",
        "PYTHON_GET_PIP_SHA256",
    }
    assert set(got["env"]) <= allowed_env, set(got["env"]) - allowed_env
    assert canary not in str(got["env"]) and canary not in got["pid1_env"]
    assert not any(canary in name for name in got["tmp"])
    assert "DOCKER_HOST" not in got["env"]
    assert len(got["pids"]) < 10 and got["pid1"].endswith("docker-init")
    assert got["hostname"] == "sandbox" and got["cwd"] == "/workspace"
    assert len(got["fds"]) <= 8  # stdio, the control socket, the listing's own fd


def test_ptrace_reaches_nothing(posture_session: Session) -> None:
    got = probe(
        posture_session,
        SYSCALL
        + """
import os
print(json.dumps({"attach_1": sc(101, 16, 1, 0, 0), "attach_self_parent": sc(101, 16, os.getppid(), 0, 0)}))
""",
    )
    assert set(got.values()) <= {"EPERM"}
