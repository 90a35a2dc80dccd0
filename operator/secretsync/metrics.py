"""Prometheus metrics, kept in one registry built at start-up (never at import)."""

from __future__ import annotations

import prometheus_client

from secretsync import __version__


class Metrics:
    """The operator's metrics; labels never carry secret values."""

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.build_info = prometheus_client.Info(
            "secretsync_build", "Version of the running operator.", registry=self.registry
        )
        self.build_info.info({"version": __version__})

    def serve(self, port: int) -> None:
        """Expose /metrics on the port, in a background thread."""
        prometheus_client.start_http_server(port, registry=self.registry)
