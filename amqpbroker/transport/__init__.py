"""Networking with anyio: the TCP listener and one task group per client connection."""
