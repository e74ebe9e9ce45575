"""Named policy profiles: what a session may use. A key may be limited to some profiles.

Built in: `strict` (small limits, no tools, gVisor, static analysis blocks), `default`, and
`data-science` (more memory, CPU and time). A JSON file named by SANDBOX_PROFILES adds or
overrides profiles:

    {"profiles": {"etl": {"limits": {"memory_mb": 2048}, "tools": ["crm.*"], "runtime": "runc",
                          "approval": ["crm.delete_*"],
                          "static_analysis": "warn", "commands": ["ls", "wc"],
                          "commands_anywhere": false}}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from sandbox.analysis import Mode
from sandbox.exceptions import InvalidInputError, NotFoundError
from sandbox.models import Limits
from sandbox.pii.policy import RestoreRule

DEFAULT_COMMANDS = (
    "ls",
    "cat",
    "head",
    "tail",
    "wc",
    "grep",
    "sort",
    "uniq",
    "cut",
    "du",
    "find",
    "python3",
)


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    limits: Limits = Limits()
    tools: tuple[str, ...] | None = None
    """Allowed MCP tools ('crm.*'); None allows every configured tool, () none."""
    restore_rules: tuple[RestoreRule, ...] = ()
    """Where real values may go, added to the deployment's `pii.restore_rules` (see
    sandbox/pii/policy.py): `[{"entities": ["EMAIL"], "from": "crm.*", "to":
    "mailer.send_email", "args": ["to"]}]`."""
    approval: tuple[str, ...] = ()
    """Tools whose calls wait for a person's decision ('mailer.send_*'), with the same globs
    as `tools`; () asks for none."""
    runtime: Literal["runc", "runsc"] = "runc"
    network: Literal["none", "allowlist"] = "none"
    """'allowlist': HTTP(S) through the controller's proxy to `egress` host:port pairs only."""
    egress: tuple[str, ...] = ()
    """Allowed 'host:port' targets (exact, lower-case host names or IP literals)."""
    egress_private: bool = False
    """Let allowlisted names resolve to private/loopback addresses (off: DNS-rebinding guard)."""
    static_analysis: Mode = "warn"
    commands: tuple[str, ...] = DEFAULT_COMMANDS
    """Program names `run_command` may start: bare ('ls', found on the box's system PATH,
    never the run's PATH) or absolute in a system folder ('/usr/bin/ls')."""
    commands_anywhere: bool = False
    """Also start a listed name from any path ('./ls', '/workspace/ls') and pass LD_*
    variables: lets a command run a program or library that code in the box wrote."""
    pii_entities: tuple[str, ...] | None = None
    """The PII entities this profile's sessions tokenize, within the deployment's
    `pii.entities` (a profile can narrow the set, never widen it); None: the deployment's."""


BUILTIN: dict[str, Profile] = {
    "strict": Profile(
        name="strict",
        limits=Limits(
            timeout_s=10,
            memory_mb=256,
            cpus=0.5,
            pids=64,
            output_bytes=256 * 1024,
            workspace_mb=64,
            max_file_mb=16,
        ),
        tools=(),
        runtime="runsc",
        static_analysis="block",
        commands=("ls", "cat", "wc"),
    ),
    "default": Profile(name="default"),
    "data-science": Profile(
        name="data-science",
        limits=Limits(timeout_s=300, memory_mb=2048, cpus=2, pids=256, workspace_mb=1024),
    ),
}


def load_profiles(path: Path | None) -> dict[str, Profile]:
    """The built-in profiles, plus (or overridden by) those in `path`.

    Raises:
        InvalidInputError: the file is missing, not JSON, or a profile does not validate.
    """
    profiles = dict(BUILTIN)
    if path is None:
        return profiles
    try:
        data = json.loads(path.read_text())
        for name, body in data.get("profiles", {}).items():
            profiles[name] = Profile.model_validate({**body, "name": name})
    except (OSError, ValueError, ValidationError, AttributeError) as exc:
        raise InvalidInputError(f"bad profiles file {path}: {exc}") from exc
    return profiles


def pick(
    profiles: dict[str, Profile], name: str, allowed: tuple[str, ...] | None = None
) -> Profile:
    """Raises NotFoundError for an unknown profile, or one the caller's key may not use."""
    if name not in profiles or (allowed is not None and name not in allowed):
        raise NotFoundError(f"no profile {name!r:.40} available")
    return profiles[name]


__all__ = ["BUILTIN", "DEFAULT_COMMANDS", "Profile", "load_profiles", "pick"]
