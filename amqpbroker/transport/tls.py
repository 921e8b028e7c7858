"""TLS for the AMQPS listener: the server context (TLS 1.2+, optional client-certificate
verification) and the identity a verified client certificate carries."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

from anyio import aclose_forcefully, get_cancelled_exc_class
from anyio.abc import AnyByteStream
from anyio.streams.tls import TLSAttribute, TLSListener

log = logging.getLogger("amqpbroker.tls")


@dataclass(kw_only=True)
class TLSSettings:
    certfile: str
    keyfile: str
    cafile: str | None = None
    verify_peer: bool = False  # ask for a client certificate and verify it
    fail_if_no_peer_cert: bool = False  # ... and refuse clients without one


class TLSFilesError(Exception):
    """A certificate, key or CA file cannot be used; the message names it."""


def server_context(settings: TLSSettings) -> ssl.SSLContext:
    """Raises TLSFilesError naming the file that cannot be used."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.certfile, settings.keyfile)
    except OSError as exc:
        files = settings.certfile if settings.keyfile == settings.certfile else (
            f"{settings.certfile}, {settings.keyfile}")
        raise TLSFilesError(f"{files}: cannot load the certificate and key "
                            f"({exc.strerror or exc})") from exc
    if settings.cafile:
        try:
            context.load_verify_locations(settings.cafile)
        except OSError as exc:
            raise TLSFilesError(f"{settings.cafile}: cannot load the CA certificates "
                                f"({exc.strerror or exc})") from exc
    if settings.verify_peer:
        context.verify_mode = (ssl.CERT_REQUIRED if settings.fail_if_no_peer_cert
                               else ssl.CERT_OPTIONAL)
    return context


def peer_common_name(stream: Any) -> str | None:
    """The CN of the client's certificate, if it presented one that was verified."""
    try:
        certificate = stream.extra(TLSAttribute.peer_certificate)
    except Exception:
        return None
    if not certificate:
        return None
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class Listener(TLSListener):
    """anyio's TLS listener, logging a failed handshake as one line, not a traceback."""

    @staticmethod
    async def handle_handshake_error(exc: BaseException, stream: AnyByteStream) -> None:
        await aclose_forcefully(stream)
        if isinstance(exc, get_cancelled_exc_class()) or not isinstance(exc, Exception):
            raise exc
        log.info("TLS handshake failed: %s", exc)
