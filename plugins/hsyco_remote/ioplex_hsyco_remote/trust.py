"""How the replicating side decides to trust the remote's certificate.

Three ways, never a silent "accept anything": the system's CA store (the default), a CA or
certificate file (``cafile``), or a pinned SHA-256 fingerprint (``fingerprint``). Pinning is
checked inside the TLS handshake, through `ssl.SSLContext.sslobject_class`, so not one byte
of HTTP (and so never the password header) is sent to a server whose certificate is not the
pinned one.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi

from .certificates import fingerprint as format_fingerprint


class _PinnedSSLObject(ssl.SSLObject):
    """An SSLObject that fails the handshake unless the peer's certificate has the pin."""

    pin: str = ""

    def do_handshake(self) -> None:
        super().do_handshake()
        der = self.getpeercert(binary_form=True)
        got = format_fingerprint(der) if der else "(no certificate)"
        if got != self.pin:
            raise ssl.SSLCertVerificationError(
                f"certificate fingerprint mismatch: the server presented {got}, "
                f"the pinned fingerprint is {self.pin}"
            )


def client_context(cafile: Path | None, pin: str | None) -> ssl.SSLContext:
    """An SSL context for the remote: verified by `cafile` (or the system store), or pinned.

    With `pin` alone the chain and host name are not checked: the fingerprint identifies the
    certificate exactly. With both, both must pass.
    """
    if cafile is not None:
        context = ssl.create_default_context(cafile=str(cafile))
    elif pin is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context()
        context.load_verify_locations(certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if pin is not None:
        context.sslobject_class = type("PinnedSSLObject", (_PinnedSSLObject,), {"pin": pin})
    return context


def certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error somewhere in `exc`'s chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
