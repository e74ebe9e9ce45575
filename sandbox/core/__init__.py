"""The core every surface calls, one room per job.

    assembly.py     builds every part from Settings, once
    orchestrator.py Orchestrator: owns the parts, opens sessions, garbage collection
    registry.py     open sessions, with per-owner and global caps checked atomically
    admission.py    who may do what: keys, profiles, rate limits, run slots, refusals audited
    aio.py          for async surfaces: wait for a slot without a thread, run in a worker
    session.py      Session: runs, files and skills of one session
    runner.py       the run pipeline: the warm container, delivery, collection, the result
    box.py          what a session's boxes are made from; a started box waiting for its run
    output.py       streamed output, tokenized line by line
    commands.py     argv-only command mode
    skills.py       an owner's skills folder
    loop.py         the one background event loop (upstream MCP, tool calls, egress)

Nothing here imports `docker`; the backend is reached only through `sandbox.backends.base.Backend`.
"""
