"""What the two clients of a remote server share (API v1's `RemoteClient` and rioget's
`RiogetClient`): its URL, an httpx client that never reads proxies from the environment nor
follows redirects, a shielded close, and transport errors turned into ones the mirror acts on
(a refused certificate is a `Refused`, retried slowly)."""

from __future__ import annotations

import ssl
from typing import Any, Self

import anyio
import httpx

from .refusals import Refused
from .trust import certificate_error

CONNECT_TIMEOUT = 10.0


class HttpsPeer:
    """One remote server over HTTPS; use as an async context manager."""

    def __init__(
        self,
        address: str,
        port: int,
        ssl_context: ssl.SSLContext,
        where: str,
        trust_hint: str,
        **client: Any,
    ) -> None:
        host = f"[{address}]" if ":" in address and not address.startswith("[") else address
        self.url = f"https://{host}:{port}"
        self.where = where
        """The configuration path of the instance (``ioservers.<name>``), in every error."""
        self._trust_hint = trust_hint
        self._http = httpx.AsyncClient(
            verify=ssl_context, trust_env=False, follow_redirects=False, **client
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Shielded: when the host stops, this runs cancelled, and the connections must
        # still be closed.
        with anyio.CancelScope(shield=True), anyio.move_on_after(CONNECT_TIMEOUT):
            await self._http.aclose()

    def _transport_error(self, exc: httpx.TransportError, what: str) -> Exception:
        """`exc` as the mirror sees it; `what` names the URL that failed."""
        cert = certificate_error(exc)
        if cert is not None:
            return Refused(
                f"{self.where}: the TLS certificate of {self.url} was refused: "
                f"{cert.args[-1] if cert.args else cert}; {self._trust_hint}"
            )
        if isinstance(exc, httpx.TimeoutException):
            return TimeoutError(f"{what}: no answer in time ({type(exc).__name__})")
        return ConnectionError(f"{what}: {type(exc).__name__}: {exc or 'connection lost'}")
