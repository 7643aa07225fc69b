"""The serving side's TLS certificate: the configured one, or a self-signed one made once.

HTTPS is the only transport. A host that is given no certificate generates a self-signed
one in its data directory on first start and keeps it, so the fingerprint that replicating
hosts pin stays the same across restarts; the fingerprint is logged at every start.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("ioplex.plugin.hsyco_remote.server")

_DNS_NAME = re.compile(
    r"(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class Certificate:
    """A certificate and key on disk, and the certificate's SHA-256 fingerprint."""

    certfile: Path
    keyfile: Path
    fingerprint: str
    generated: bool


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate as ``AB:CD:...`` (as openssl prints it)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def normalize_fingerprint(text: str) -> str:
    """``ab:cd...``, ``ABCD...`` or ``sha256:ab cd ...`` → ``AB:CD:...``; else ValueError."""
    raw = text.strip()
    if raw.lower().startswith("sha256:"):
        raw = raw[7:]
    hexdigits = "".join(c for c in raw if c not in ": ").upper()
    if len(hexdigits) != 64 or any(c not in "0123456789ABCDEF" for c in hexdigits):
        raise ValueError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
    return ":".join(hexdigits[i : i + 2] for i in range(0, 64, 2))


def file_fingerprint(certfile: Path) -> str:
    """The fingerprint of the first certificate in a PEM file."""
    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    return fingerprint(cert.public_bytes(serialization.Encoding.DER))


def load(certfile: Path, keyfile: Path) -> Certificate:
    """A configured certificate and key; OSError or ValueError when unreadable or mismatched."""
    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    key = serialization.load_pem_private_key(keyfile.read_bytes(), password=None)
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise ValueError(f"the key in {keyfile} does not belong to the certificate {certfile}")
    der = cert.public_bytes(serialization.Encoding.DER)
    return Certificate(certfile, keyfile, fingerprint(der), generated=False)


def check_names(names: Iterable[str], where: str) -> list[str]:
    """Addresses and DNS names for the certificate; ValueError naming `where` and the entry."""
    checked: list[str] = []
    for i, name in enumerate(names):
        text = name.strip()
        try:
            ipaddress.ip_address(text)
        except ValueError:
            if not _DNS_NAME.fullmatch(text):
                raise ValueError(
                    f"{where}[{i}]: {name!r} is neither an IP address nor a DNS name "
                    '(e.g. "192.168.1.20", "fe80::1", "hsyco.example.org")'
                ) from None
        checked.append(text)
    return checked


def alt_names(cert_pem: bytes) -> set[str]:
    """The IP addresses and DNS names in a certificate's subjectAltName."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )


def _wanted(names: Iterable[str]) -> list[str]:
    """The names a generated certificate carries beyond the defaults (an unspecified listen
    address such as 0.0.0.0 names no host and is left out)."""
    wanted: list[str] = []
    for name in names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            text = name.lower()
        else:
            if address.is_unspecified:
                continue
            text = str(address)
        if text not in wanted:
            wanted.append(text)
    return wanted


def load_or_create(directory: Path, host_name: str, names: Iterable[str] = ()) -> Certificate:
    """The self-signed certificate kept in `directory`, generated there on first use.

    It carries localhost, 127.0.0.1, ::1, the machine's name and `names` (the listen address
    and the ``names`` setting). When `names` asks for one the kept certificate lacks, a new
    certificate is generated (its fingerprint changes: the old files are kept as ``*.old``
    and a warning says so, since replicating hosts that pinned the old one must be told).
    """
    certfile, keyfile = directory / CERT_FILE, directory / KEY_FILE
    wanted = _wanted(names)
    if certfile.exists() and keyfile.exists():
        kept = load(certfile, keyfile)
        missing = [n for n in wanted if n not in alt_names(certfile.read_bytes())]
        if not missing:
            return kept
        log.warning(
            "hsyco_remote server: the certificate %s does not name %s: generating a new one "
            "(SHA-256 fingerprint %s is replaced; replicating hosts that pinned it must pin "
            "the new one); the old files are kept as *.old",
            certfile,
            ", ".join(missing),
            kept.fingerprint,
        )
        certfile.replace(certfile.with_name(CERT_FILE + ".old"))
        keyfile.replace(keyfile.with_name(KEY_FILE + ".old"))
    directory.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = self_signed(host_name, wanted)
    # The key is written owner-only before any byte of it lands on disk.
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    certfile.write_bytes(cert_pem)
    cert = load(certfile, keyfile)
    return Certificate(cert.certfile, cert.keyfile, cert.fingerprint, generated=True)


def self_signed(host_name: str, names: Iterable[str] = ()) -> tuple[bytes, bytes]:
    """A new P-256 key and a self-signed certificate for it, as PEM (certificate, key).

    The certificate names localhost, 127.0.0.1, ::1, this machine's name and `names`
    (IP addresses or DNS names), so a client
    that trusts it as a CA file can also check the host name; it is its own CA, which
    strict X.509 verification accepts as a trust anchor.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"ioplex hsyco_remote {host_name}"[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ioplex"),
        ]
    )
    sans: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    machine = socket.gethostname()
    if machine and machine != "localhost" and all(c.isalnum() or c in "-." for c in machine):
        sans.append(x509.DNSName(machine))
    for extra in names:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(extra))
        except ValueError:
            entry = x509.DNSName(extra)
        if entry not in sans:
            sans.append(entry)
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
