"""The monitor's HTTP side: Prometheus scrape, health and readiness, later the boards."""

from call_monitor.web.app import create_app, serve

__all__ = ["create_app", "serve"]
