"""The serving side's TLS certificate: the configured one, or a self-signed one made once.

HTTPS is the only transport. A host that is given no certificate generates a self-signed
one in its data directory on first start and keeps it, so the fingerprint that replicating
hosts pin stays the same across restarts; the fingerprint is logged at every start.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
        raise ValueError(
            f"{text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
        )
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


def load_or_create(directory: Path, host_name: str) -> Certificate:
    """The self-signed certificate kept in `directory`, generated there on first use."""
    certfile, keyfile = directory / CERT_FILE, directory / KEY_FILE
    if certfile.exists() and keyfile.exists():
        return load(certfile, keyfile)
    directory.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = self_signed(host_name)
    # The key is written owner-only before any byte of it lands on disk.
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    certfile.write_bytes(cert_pem)
    cert = load(certfile, keyfile)
    return Certificate(cert.certfile, cert.keyfile, cert.fingerprint, generated=True)


def self_signed(host_name: str) -> tuple[bytes, bytes]:
    """A new P-256 key and a self-signed certificate for it, as PEM (certificate, key).

    The certificate names localhost, 127.0.0.1, ::1 and this machine's name, so a client
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
    alt_names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    machine = socket.gethostname()
    if machine and machine != "localhost" and all(c.isalnum() or c in "-." for c in machine):
        alt_names.append(x509.DNSName(machine))
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=False, encipher_only=False, decipher_only=False,
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
