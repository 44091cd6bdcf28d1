"""The development certificate of ``waziup run -tls``: self-signed, for this machine's names.

A platform started on a laptop has no certificate from a public CA; rather than serving
plain text, ``waziup run -tls`` makes one certificate for every service (broker, IoT agent)
and asks clients to trust it explicitly (``curl --cacert <data>/tls/cert.pem``). It is kept
under the data directory and reused while it is valid, so that clients trusting it keep
working across restarts; the key file is readable by its owner only (0600).

:func:`self_signed` is pure (names in, PEM bytes out); :func:`development_files` writes the
files or reuses them; :func:`covers` tells whether a certificate is valid for a name.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=7)  # a certificate this close to expiry is made anew at start-up
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
CERT_FILE, KEY_FILE = "cert.pem", "key.pem"


@dataclass(frozen=True)
class TLSFiles:
    """Where the certificate and its key are; ``created``: made by this call (else reused)."""

    cert: Path
    key: Path
    created: bool


def machine_names(extra: Iterable[str] = ()) -> list[str]:
    """localhost, the loopback addresses, the host name, then ``extra`` (no duplicates)."""
    names = [*LOCAL_NAMES, socket.gethostname(), *extra]
    return [name for i, name in enumerate(names) if name and name not in names[:i]]


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name.lower())


def self_signed(
    names: Sequence[str], *, now: datetime.datetime | None = None, days: int = VALID_DAYS
) -> tuple[bytes, bytes]:
    """(certificate, private key) in PEM for ``names`` (host names or IP addresses).

    A P-256 key (quick to make, accepted by every TLS client). The certificate is its own
    trust anchor, not a CA (``CA:FALSE``): trusting it trusts this server only, never
    certificates someone would sign with its key.
    """
    if not names:
        raise ValueError("a certificate needs at least one name")
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "waziup development"),
        x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
    ])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks of clients a little behind
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _names_of(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {name.lower() for name in san.get_values_for_type(x509.DNSName)} | {
        str(address) for address in san.get_values_for_type(x509.IPAddress)
    }


def covers(cert_pem: bytes, name: str) -> bool:
    """Whether a client reaching ``name`` accepts the (first) certificate of ``cert_pem``:
    an IP address must be listed as such, a host name as such or under a ``*.`` wildcard."""
    names = _names_of(x509.load_pem_x509_certificate(cert_pem))
    try:
        return str(ipaddress.ip_address(name)) in names
    except ValueError:
        pass
    name = name.lower().rstrip(".")
    parent = name.partition(".")[2]
    return name in names or (bool(parent) and f"*.{parent}" in names)


def _reusable(cert_path: Path, key_path: Path, names: Sequence[str], now: datetime.datetime) -> bool:
    """The files hold a certificate for every name, valid for a while yet, and its key."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    if cert.not_valid_after_utc - now < RENEW_BEFORE or cert.not_valid_before_utc > now:
        return False
    if not {str(_general_name(n).value).lower() for n in names} <= _names_of(cert):
        return False
    return key.public_key() == cert.public_key()  # type: ignore[no-any-return]


def _write(path: Path, data: bytes, mode: int) -> None:
    """Whole or not at all (a temporary file renamed), created with ``mode`` from the start."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is masked by the umask, and ignored for an existing file
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def development_files(directory: str | os.PathLike[str], names: Sequence[str]) -> TLSFiles:
    """``directory``/cert.pem and key.pem for ``names``: reused when valid (key mode set to
    0600 again), else made with :func:`self_signed`. The directory is created 0700."""
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    now = datetime.datetime.now(datetime.UTC)
    if _reusable(cert_path, key_path, names, now):
        os.chmod(key_path, 0o600)
        return TLSFiles(cert_path, key_path, created=False)
    cert_pem, key_pem = self_signed(names, now=now)
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert_pem, 0o644)
    return TLSFiles(cert_path, key_path, created=True)
