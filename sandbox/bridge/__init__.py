"""Tool bridge: upstream MCP servers as a code API inside the sandbox, called back over the
run's socket with a per-run token."""
