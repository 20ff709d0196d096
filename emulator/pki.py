"""The local CA, made once per workspace: a server certificate for loopback and a client
certificate for x509 bindings. The app and the gateway trust the CA only through
``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``, as they would trust any CA."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "ensure_pki"]

HOSTS = ("localhost", "*.localhost")
ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert_file: Path
    client_key_file: Path


def ensure_pki(folder: Path) -> Pki:
    """The workspace's CA and certificates, made on first use and reused after."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem",
              folder / "client.pem", folder / "client-key.pem")
    if all(p.exists() for p in vars(pki).values()):
        return pki
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "frontapp local emulator CA")])
    ca = (_builder(ca_name, ca_name, ca_key, days=3650)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_usage(key_cert_sign=True), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server_key = _key()
    sans = [x509.DNSName(h) for h in HOSTS] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ADDRESSES]
    server = (_builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name,
                       server_key, days=825)
              .add_extension(x509.SubjectAlternativeName(sans), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    client_key = _key()
    client = (_builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "frontapp-cpi x509 binding")]),
                       ca_name, client_key, days=30)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    files = ((pki.ca_file, _pem(ca)), (pki.cert_file, _pem(server)), (pki.key_file, _key_pem(server_key)),
             (pki.client_cert_file, _pem(client)), (pki.client_key_file, _key_pem(client_key)))
    for path, data in files:
        path.write_bytes(data)
        if "key" in path.name:
            path.chmod(0o600)
    return pki


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey,
             days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


def _usage(*, key_cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                         crl_sign=key_cert_sign, encipher_only=False, decipher_only=False)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
