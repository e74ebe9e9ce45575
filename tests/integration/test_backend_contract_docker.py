"""The backend contract on DockerBackend, and its whole posture read back from the engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from sandbox.backends.base import LAUNCH_SPEC_FIELDS
from sandbox.backends.docker import CPU_GROUP_ROOT, DockerBackend
from tests.conftest import RUN_ID
from tests.contract import CHECKED_HERE, BackendContract, Boxes


@pytest.fixture
def contract_backend(backend: DockerBackend) -> DockerBackend:
    return backend


@pytest.fixture
def contract_image(image: str) -> str:
    return image


@pytest.fixture
def contract_controller() -> str:
    # The session's `backend` fixture removes whatever carries a controller id starting so.
    return f"{RUN_ID}k"


@pytest.fixture
def api() -> Iterator[docker.APIClient]:
    client = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
    yield client
    client.close()


@pytest.fixture
def boxes(contract_backend: DockerBackend, image: str, tmp_path: Path) -> Iterator[Boxes]:
    made = Boxes(contract_backend, image, f"{RUN_ID}k", tmp_path)
    yield made
    made.close()


class TestDockerBackendContract(BackendContract):
    checked_elsewhere = LAUNCH_SPEC_FIELDS - CHECKED_HERE


def test_docker_claims_every_launch_spec_field(backend: DockerBackend) -> None:
    assert backend.enforced == LAUNCH_SPEC_FIELDS


def test_the_engine_holds_every_field_of_the_spec_and_the_fixed_hardening(
    boxes: Boxes, api: docker.APIClient
) -> None:
    box = boxes.create(
        env={"SBX_CONTRACT_ENV": "1"}, hostname="contract-box", cpu_group="tcontract"
    )
    spec = box.spec
    got = api.inspect_container(box.ref.id)
    host, config = got["HostConfig"], got["Config"]
    # Fields of the spec.
    assert config["Image"] == spec.image
    assert config["User"] == spec.user
    assert config["Hostname"] == "contract-box"
    assert config["WorkingDir"] == spec.workdir
    assert "SBX_CONTRACT_ENV=1" in config["Env"]
    assert config["Labels"].items() >= dict(spec.labels).items()
    assert sorted(host["Binds"]) == sorted(
        f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}" for m in spec.mounts
    )
    assert host["Memory"] == spec.memory_bytes and host["MemorySwap"] == spec.memory_bytes
    assert host["NanoCpus"] == int(spec.cpus * 1e9)
    assert host["PidsLimit"] == spec.pids
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]}
    assert ulimits == {
        "nofile": (spec.nofile, spec.nofile),
        "fsize": (spec.fsize_bytes, spec.fsize_bytes),
        "core": (0, 0),
    }
    tmp_opts = host["Tmpfs"]["/tmp"].split(",")
    assert f"size={spec.tmp_bytes}" in tmp_opts and f"nr_inodes={spec.tmp_inodes}" in tmp_opts
    assert {"noexec", "nosuid", "nodev"} <= set(tmp_opts)
    seccomp = [o for o in host["SecurityOpt"] if o.startswith("seccomp=")]
    assert len(seccomp) == 1
    assert json.loads(seccomp[0].removeprefix("seccomp=")) == json.loads(spec.seccomp_profile)
    assert host["NetworkMode"] == spec.network == "none"
    assert config.get("NetworkDisabled") is True
    assert host["Runtime"] == spec.runtime
    assert host["CgroupParent"] == f"{CPU_GROUP_ROOT}/{spec.cpu_group}"
    # What every box gets, whatever the spec says.
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["Privileged"] is False
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["IpcMode"] == "private"
    assert host["LogConfig"]["Type"] == "none"


PROBE = """
import errno, json, os, resource, socket

def read(*paths):
    for path in paths:
        try:
            return open(path).read().split()
        except OSError:
            pass
    return None

def write(path):
    try:
        open(path, 'w').close(); return 'OK'
    except OSError as e:
        return errno.errorcode[e.errno]

status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
tmp = os.statvfs('/tmp')
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(),
    "hostname": socket.gethostname(),
    "no_new_privs": status['NoNewPrivs'].strip(), "seccomp": status['Seccomp'].strip(),
    "cap_eff": int(status['CapEff'], 16),
    "interfaces": [n for _, n in socket.if_nameindex()],
    "root_write": write('/rootfs-probe'),
    "tmp_bytes": tmp.f_blocks * tmp.f_frsize, "tmp_inodes": tmp.f_files,
    "memory": read('/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'),
    "pids": read('/sys/fs/cgroup/pids.max', '/sys/fs/cgroup/pids/pids.max'),
    "cpu": read('/sys/fs/cgroup/cpu.max', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us'),
    "cpu_period": read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'),
}))
"""


def test_the_posture_is_what_the_box_sees_from_inside(boxes: Boxes) -> None:
    got = boxes.probe(PROBE, hostname="contract-box")
    spec = boxes.made[-1].spec
    uid, gid = (int(x) for x in spec.user.split(":"))
    assert (got["uid"], got["gid"]) == (uid, gid)
    assert got["hostname"] == "contract-box"
    assert (got["no_new_privs"], got["seccomp"], got["cap_eff"]) == ("1", "2", 0)
    assert got["interfaces"] == ["lo"]
    assert got["root_write"] == "EROFS"
    assert got["tmp_bytes"] == spec.tmp_bytes and got["tmp_inodes"] == spec.tmp_inodes
    assert got["memory"] == [str(spec.memory_bytes)]
    assert got["pids"] == [str(spec.pids)]
    cpu = got["cpu"]
    assert isinstance(cpu, list)
    if len(cpu) == 2:  # cgroup v2: "<quota> <period>"
        assert int(cpu[0]) / int(cpu[1]) == spec.cpus
    else:
        period = got["cpu_period"]
        assert isinstance(period, list)
        assert int(cpu[0]) / int(period[0]) == spec.cpus
