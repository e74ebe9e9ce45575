"""Prometheus metrics of one controller, in a registry of its own."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("sbx_runs_total", "Runs by outcome.", ["outcome"], registry=r)
        self.run_seconds = Histogram(
            "sbx_run_duration_seconds",
            "Run duration.",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.auth_failures = Counter(
            "sbx_auth_failures_total", "Requests with no valid API key.", registry=r
        )
        self.rate_limited = Counter(
            "sbx_rate_limited_total", "Requests refused by a rate limit.", registry=r
        )
        self.sessions = Gauge("sbx_sessions_open", "Open sessions.", registry=r)
        self.warm_ready = Gauge(
            "sbx_warm_containers_ready",
            "Sessions whose next container is started and waiting.",
            registry=r,
        )
        self.tool_calls = Counter(
            "sbx_tool_calls_total", "Tool calls by outcome.", ["outcome"], registry=r
        )
        self.token_refusals = Counter("sbx_token_refusals_total", "Refused run tokens.", registry=r)
        self.violations = Counter(
            "sbx_security_events_total", "Refusals by kind.", ["kind"], registry=r
        )
        self.pii_tokens = Gauge(
            "sbx_pii_tokens_issued", "PII values tokenized in open sessions.", registry=r
        )

    def on_audit(self, record: dict[str, Any]) -> None:
        """Counts runs and security events from the audit trail, so both see the same facts
        whichever surface (REST, MCP, CLI, embedded) caused them."""
        event = record.get("event")
        count = record.get("count", 1)
        n = count if isinstance(count, int) and count > 0 else 1  # aggregated refusals
        if event == "run_end":
            self.runs.labels(str(record.get("outcome"))).inc()
            duration = record.get("duration_s")
            if isinstance(duration, int | float):
                self.run_seconds.observe(duration)
        elif event == "tool_call":
            self.tool_calls.labels(str(record.get("outcome"))).inc()
        elif event == "tool_refused":
            self.tool_calls.labels(str(record.get("reason"))).inc(n)
        elif event == "token_refused":
            self.token_refusals.inc(n)
            self.violations.labels(str(event)).inc(n)
        elif event == "upstream_restart":
            self.violations.labels(str(event)).inc()
        elif event == "auth_failure":
            self.auth_failures.inc(n)
            self.violations.labels(str(event)).inc(n)
        elif event == "rate_limited":
            self.rate_limited.inc(n)
            self.violations.labels(str(event)).inc(n)
        elif event == "admission_refused":
            if record.get("reason") == "queue_full":
                self.rate_limited.inc(n)
            self.violations.labels(f"refused_{record.get('reason')}").inc(n)
        elif event == "quota_exceeded":
            self.violations.labels(str(event)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
