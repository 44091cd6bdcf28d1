"""The TLS files a service is given on its command line, checked once at start-up.

The broker (``-https -key -cert``, ``-notifCaFile``) and the IoT agent (``--https --key
--cert``, ``--cb-ca``) take the same kinds of files under different option names. Each
file is loaded here before anything starts, so that a missing, unreadable, encrypted or
mismatched one stops start-up with a message naming the option and the file, instead of
a traceback from uvicorn on the first listener (or a worker restarted over and over).
Both services raise the same ``SettingsError`` their other options do.
"""

from __future__ import annotations

import ssl

from .settings import SettingsError


def trust_context(option: str, cafile: str) -> ssl.SSLContext:
    """A client context trusting the system's CAs plus the PEM certificates of ``cafile``
    (a private CA, or a peer's own self-signed certificate: a leaf given as its CA is
    trusted as such). SettingsError naming ``option`` for a file that cannot be read or
    holds no PEM certificate."""
    context = ssl.create_default_context()
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a peer's own certificate may stand for its CA
    try:
        context.load_verify_locations(cafile=cafile)
    except ssl.SSLError:  # an OSError too: first
        raise SettingsError(f"option {option}: {cafile!r} holds no PEM certificate") from None
    except OSError as exc:
        raise SettingsError(f"option {option}: cannot read {cafile!r}: {exc.strerror}") from None
    return context


class _Encrypted(Exception):
    """The key asked for a passphrase (which OpenSSL would otherwise read from the terminal)."""


def _no_passphrase() -> bytes:
    raise _Encrypted()


def check_https_files(key: str, cert: str) -> None:
    """A service's ``-https``: ``-key`` and ``-cert`` both given and fit (``check_key_and_cert``)."""
    missing = [name for name, path in (("-key", key), ("-cert", cert)) if not path]
    if missing:
        raise SettingsError(f"option -https needs -key FILE and -cert FILE: {' and '.join(missing)} missing")
    check_key_and_cert("-key", key, "-cert", cert)


def check_key_and_cert(key_option: str, key: str, cert_option: str, cert: str) -> None:
    """The server key and certificate, loaded as the server will: both readable, the
    certificate PEM, the key PEM, not encrypted (no prompt for a passphrase), and the
    certificate's. SettingsError naming the option of the file at fault otherwise."""
    for option, path in ((key_option, key), (cert_option, cert)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise SettingsError(f"option {option}: cannot read {path!r}: {exc.strerror}") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError:
        raise SettingsError(f"option {cert_option}: {cert!r} holds no PEM certificate") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, _no_passphrase)
    except _Encrypted:
        raise SettingsError(f"option {key_option}: {key!r} is encrypted: give the key without a passphrase") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise SettingsError(
                f"option {key_option}: {key!r} is not the key of the certificate {cert!r} ({cert_option})"
            ) from None
        raise SettingsError(f"option {key_option}: {key!r} holds no PEM private key") from None
