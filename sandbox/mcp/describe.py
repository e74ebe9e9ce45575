"""What the tools tell a model about the sandbox: written from this deployment's settings.

A model uses a tool well when it knows what persists between calls (files in /workspace do;
variables, imports and /tmp do not), the limits (timeout, output budget), what is installed
(the image), the network, and what the PII tokens it sees are and how to use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.exceptions import InvalidInputError
from sandbox.profiles import BUILTIN, Profile, load_profiles
from sandbox.settings import Settings


@dataclass(frozen=True)
class Facts:
    """The facts a description states, from the profile an MCP session gets."""

    profile: str
    timeout_s: float
    memory_mb: int
    cpus: float
    workspace_mb: int
    budget: int
    network: str
    installed: str
    tools: bool
    """MCP servers' tools are callable from code (the bridge is configured)."""


def facts(settings: Settings, profiles: tuple[str, ...] | None = None) -> Facts:
    """The facts for a session of a principal limited to `profiles` (None: any), which gets
    the 'default' profile if it may, else its first (as admission picks)."""
    try:
        known = load_profiles(settings.profiles)
    except InvalidInputError:  # the orchestrator reports a bad file; describe the built-ins
        known = dict(BUILTIN)
    known["default"] = known["default"].model_copy(
        update={"limits": settings.limits, "runtime": settings.runtime}
    )
    name = "default" if profiles is None or "default" in profiles or not profiles else profiles[0]
    profile = known.get(name, known["default"])
    limits = profile.limits
    return Facts(
        profile=profile.name,
        timeout_s=limits.timeout_s,
        memory_mb=limits.memory_mb,
        cpus=limits.cpus,
        workspace_mb=limits.workspace_mb,
        budget=settings.output.budget,
        network=_network(profile),
        installed=settings.output.image_notes or _INSTALLED,
        tools=settings.mcp_config is not None and profile.tools != (),
    )


_INSTALLED = (
    "Python 3 with its standard library and a minimal Debian userland; no third-party "
    "packages (no numpy or pandas), and nothing can be installed"
)


def _network(profile: Profile) -> str:
    if profile.network == "allowlist" and profile.egress:
        hosts = ", ".join(profile.egress[:10]) + (" ..." if len(profile.egress) > 10 else "")
        return f"no network except HTTP(S) to {hosts} through the proxy in $HTTPS_PROXY"
    return "no network at all"


def instructions(f: Facts) -> str:
    tools = (
        "Tools of connected MCP servers are Python functions inside execute_code: "
        "search_tools finds them, then `from servers.<server> import <tool>`.\n"
        if f.tools
        else ""
    )
    return (
        "A Python sandbox: each execute_code call runs in a fresh, isolated container "
        f"({f.installed}; {f.network}).\n"
        "Between calls only files persist: /workspace keeps them for this conversation, and "
        "/skills keeps the skills you save (save_skill) for later conversations. Variables, "
        "imports, processes and /tmp do not persist: save what you need to /workspace.\n"
        "If your client keeps no MCP session (protocol 2026-07-28), each call gets a fresh "
        "/workspace: call open_session once and pass its id as `session` to every call.\n"
        f"{tools}"
        f"Results show about {f.budget:,} characters of output, its start and end; the "
        "whole output of a long run is saved in /workspace/.outputs/ (read_file pages "
        "through it).\n" + PII
    )


PII = (
    "Personal data (emails, phone numbers, card numbers, names, addresses, secrets) reaches "
    "you as tokens such as [EMAIL_1], each standing for one real value. Use a token as the "
    "value: pass it unchanged to tools and in code. In code, a token of a value the sandbox "
    "printed or read from its files is that value (df[df.email == '[EMAIL_1]'] finds the "
    "row); a token from a tool's result stays a token in code and is restored only when "
    "passed to a tool allowed to receive it. Never guess the value behind a token."
)


def execute_code(f: Facts) -> str:
    return (
        "Run Python code in a fresh sandbox container and return its output, exit code and "
        "duration. The value of the last expression is shown, as in a notebook (end the line "
        "with ';' to hide it); tracebacks quote the failing lines.\n"
        "Persists to later calls: files in /workspace (the working directory). Does not: "
        "variables, imports, background processes, /tmp.\n"
        f"Limits: timeout up to {f.timeout_s:g} s (the default), {f.memory_mb} MB memory, "
        f"{f.cpus:g} CPU, {f.workspace_mb} MB of files. {f.installed}; {f.network}.\n"
        f"Output: about {f.budget:,} characters are returned, the start and the end; a "
        "marker says what was left out and where the whole output is saved. Output and "
        "progress are sent as notifications while the code runs.\n"
        "Personal data in output appears as tokens like [EMAIL_1] (see the server's "
        "instructions)."
        + (" Tool calls that need approval are put to the user." if f.tools else "")
    )


SEARCH_TOOLS = (
    "Find the MCP tools that code in execute_code can call, best match first. Each result "
    "names the tool (server.tool) and the line that imports it."
)
READ_FILE = (
    "Read a file from /workspace, a page at a time. Text comes back with personal data as "
    "tokens, up to the output budget per call; a marker says where the next page starts. "
    "Pictures (PNG, JPEG, GIF, WebP) come back as images. Other binary files are refused: "
    "read them from code, or ask for encoding='base64'."
)
WRITE_FILE = (
    "Write a UTF-8 text file into /workspace (replacing one of that name; folders are "
    "created). Code in later execute_code calls reads it there."
)
LIST_FILES = (
    "List the files and folders under /workspace (or a folder in it), recursively, a page "
    "at a time. Saved outputs under .outputs/ are listed only when path names them."
)
SAVE_SKILL = (
    "Save a file (a skill: a helper module, notes, a recipe) into /skills, where it stays "
    "for your later conversations too. Code reads it there (read-only); `import` works "
    "with sys.path.append('/skills')."
)
LIST_SKILLS = "List your saved skills in /skills, a page at a time."
