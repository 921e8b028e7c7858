"""The management plane: HTTP API, metrics."""
