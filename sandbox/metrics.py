"""Prometheus metrics of one controller, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sandbox.models import RunResult


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
        self.pii_tokens = Gauge(
            "sbx_pii_tokens_issued", "PII values tokenized in open sessions.", registry=r
        )

    def observe_run(self, result: RunResult) -> None:
        outcome = (
            "timed_out"
            if result.timed_out
            else "oom_killed"
            if result.oom_killed
            else "error"
            if result.error
            else "ok"
            if result.exit_code == 0
            else "nonzero_exit"
        )
        self.runs.labels(outcome).inc()
        self.run_seconds.observe(result.duration_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
