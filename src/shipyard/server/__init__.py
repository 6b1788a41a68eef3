"""The HTTP server: REST API, watch streams, metrics (and, later, the UI and gateway)."""
