"""What every box of a session is made from, and one started box waiting for its run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.backends.base import ContainerRef
from sandbox.channel import RunChannel
from sandbox.egress import EgressProxy
from sandbox.models import Limits
from sandbox.pii import Tokenizer
from sandbox.profiles import Profile


@dataclass(frozen=True)
class Box:
    """What every container of one session is made from."""

    owner: str
    session_id: str
    limits: Limits
    profile: Profile
    workspace: Path
    skills: Path
    tools: tuple[str, ...] | None
    tokenizer: Tokenizer | None


@dataclass
class Warm:
    """A started box, dialled in to its run socket, holding no code and no token yet."""

    exec_id: str
    ref: ContainerRef
    channel: RunChannel
    egress: EgressProxy | None = None
