"""A deployment's own PKI: a CA, certificates bound to catalog principals, revocation.

``lijiao pki init`` makes the deployment CA (ECDSA P-256) in a folder of its own;
``lijiao pki issue`` makes a certificate for the gateway (server) or for a principal
(client: a system, an officer, an auditor, an administrator), whose subject common name
is the principal's name; ``lijiao pki revoke`` adds a certificate to the CA's signed
revocation list (``crl.pem``), which the gateway re-reads when it changes.

The gateway does not trust a client certificate for its name alone: the SHA-256
fingerprint of each issued (or registered external) certificate is a credential of its
principal in the catalog. A certificate from an external CA is used the same way:
configure its CA as ``LIJIAO_CLIENT_CA`` and register each certificate with
``lijiao pki register``.

Private keys are written owner-only (0600) and never leave the folder they are made in.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CRL = "crl.pem"
ORGANIZATION = "lijiao"


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, in hex: how the catalog knows it."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def fingerprint_of_pem(pem: bytes) -> str:
    """:func:`fingerprint` of a PEM certificate."""
    return fingerprint(x509.load_pem_x509_certificate(pem))


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Authority:
    """A CA loaded from its folder."""

    folder: Path
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, folder: Path) -> Authority:
        """Loads the CA of ``folder``.

        Raises:
            ValueError: The folder holds no CA (run ``lijiao pki init``).
        """
        try:
            cert = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
            key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), None)
        except FileNotFoundError as exc:
            raise ValueError(f"no CA in {folder}: run lijiao pki init --dir {folder}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{folder / CA_KEY} is not an EC private key")
        return cls(folder, cert, key)

    @classmethod
    def create(cls, folder: Path, name: str, days: int = 3650) -> Authority:
        """Makes a new CA in ``folder`` (which must not hold one) and an empty CRL.

        Raises:
            ValueError: The folder already holds a CA.
        """
        if (folder / CA_KEY).exists() or (folder / CA_CERT).exists():
            raise ValueError(
                f"{folder} already holds a CA; a second one would orphan its certificates"
            )
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        _write_private(folder / CA_KEY, _key_pem(key))
        (folder / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        authority = cls(folder, cert, key)
        authority.write_crl([])
        return authority

    def issue(
        self,
        out: Path,
        name: str,
        *,
        server_names: tuple[str, ...] = (),
        days: int = 365,
        not_before: datetime.datetime | None = None,
    ) -> tuple[Path, Path, x509.Certificate]:
        """Issues a certificate and key into ``out`` (``NAME-cert.pem``, ``NAME-key.pem``).

        Args:
            name: Common name: the principal's name, or the gateway's host name.
            server_names: DNS names and IP addresses for a server (gateway) certificate;
                empty for a client certificate.
            days: Validity.
            not_before: Start of validity (default: five minutes ago).
        """
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or _now() - datetime.timedelta(minutes=5)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                        x509.NameAttribute(NameOID.COMMON_NAME, name),
                    ]
                )
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if server_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in server_names]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        cert_path, key_path = out / f"{safe}-cert.pem", out / f"{safe}-key.pem"
        _write_private(key_path, _key_pem(key))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path, cert

    def revoked(self) -> list[x509.RevokedCertificate]:
        """The certificates on the current CRL."""
        path = self.folder / CRL
        if not path.exists():
            return []
        return list(x509.load_pem_x509_crl(path.read_bytes()))

    def revoke(self, certificate: x509.Certificate) -> bool:
        """Adds a certificate this CA issued to the CRL; False when it was there already.

        Raises:
            ValueError: Another CA issued the certificate.
        """
        if certificate.issuer != self.certificate.subject:
            raise ValueError("this certificate was not issued by this CA")
        listed = self.revoked()
        if any(r.serial_number == certificate.serial_number for r in listed):
            return False
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.serial_number)
            .revocation_date(_now())
            .build()
        )
        self.write_crl([*listed, entry])
        return True

    def write_crl(self, entries: list[x509.RevokedCertificate]) -> None:
        """Signs and writes the CRL (atomically: readers never see half a file)."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + datetime.timedelta(days=30))
        )
        for entry in entries:
            builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(self.key, hashes.SHA256())
        partial = self.folder / (CRL + ".partial")
        partial.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        partial.replace(self.folder / CRL)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class RevocationList:
    """The CRL the gateway honours, re-read whenever its file changes.

    Only a CRL signed by one of the trusted CAs counts. A file that does not verify
    fails closed: calls with certificates are refused (INTERNAL, logged with an
    incident id) until the file is fixed, rather than revocations being ignored.
    """

    def __init__(self, path: Path | None, authorities: list[x509.Certificate]) -> None:
        self.path = path
        self.authorities = authorities
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._serials: frozenset[tuple[bytes, int]] = frozenset()

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        with self._lock:
            crl = x509.load_pem_x509_crl(self.path.read_bytes())
            issuer = next((a for a in self.authorities if a.subject == crl.issuer), None)
            if issuer is None or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                raise ValueError(f"{self.path} is not signed by a trusted CA")
            key = crl.issuer.public_bytes()
            self._serials = frozenset((key, entry.serial_number) for entry in crl)
            self._stamp = stamp

    def is_revoked(self, certificate: x509.Certificate) -> bool:
        """Whether the certificate is on the (current) list."""
        self._load()
        return (certificate.issuer.public_bytes(), certificate.serial_number) in self._serials
