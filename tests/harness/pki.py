"""Certificates and keys for the local control plane, made fresh for each run."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

VALIDITY = datetime.timedelta(days=7)
# The `kubernetes` Service's ClusterIP: the first address of --service-cluster-ip-range.
SERVICE_IP = "10.0.0.1"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pki:
    """Paths of everything kube-apiserver and its clients need."""

    serving_ca: Path  # trust anchor for the apiserver's TLS
    serving_cert: Path
    serving_key: Path
    client_ca: Path  # signs client certificates the apiserver accepts
    admin_cert: Path  # CN=admin, O=system:masters
    admin_key: Path
    sa_public: Path  # ServiceAccount token verification
    sa_private: Path  # ServiceAccount token signing (TokenRequest)


def _pem_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return cert, key


def private_key_pem() -> str:
    """A fresh private key in PEM (PKCS #8): a planted secret for the audit's tests."""
    return _pem_key(ec.generate_private_key(ec.SECP256R1())).decode()


def ca_certificate_pem(cn: str) -> str:
    """A CA certificate alone (public; its key is dropped): a ConfigMap's look-alike."""
    cert, _ = _ca(cn)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    subject: x509.Name,
    *,
    server: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
                if server
                else [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    # The names and the Service IP (the first of devenv's
                    # --service-cluster-ip-range) by which Pods on the local node reach
                    # the apiserver (harness/node.py): kopf logs in by name, the
                    # kubernetes client's in-cluster config by KUBERNETES_SERVICE_HOST.
                    x509.DNSName("kubernetes"),
                    x509.DNSName("kubernetes.default"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.DNSName("kubernetes.default.svc.cluster.local"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address(SERVICE_IP)),
                ]
            ),
            critical=False,
        )
    return builder.sign(ca[1], hashes.SHA256()), key


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def create(directory: Path) -> Pki:
    """Write a fresh PKI into the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    serving_ca = _ca("secretsync-test-serving-ca")
    serving = _leaf(serving_ca, _name("kube-apiserver"), server=True)
    client_ca = _ca("secretsync-test-client-ca")
    admin = _leaf(client_ca, _name("admin", "system:masters"), server=False)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_public = sa_key.public_key().public_bytes(
        pem, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Pki(
        serving_ca=_write(directory / "serving-ca.crt", serving_ca[0].public_bytes(pem)),
        serving_cert=_write(directory / "serving.crt", serving[0].public_bytes(pem)),
        serving_key=_write(directory / "serving.key", _pem_key(serving[1])),
        client_ca=_write(directory / "client-ca.crt", client_ca[0].public_bytes(pem)),
        admin_cert=_write(directory / "admin.crt", admin[0].public_bytes(pem)),
        admin_key=_write(directory / "admin.key", _pem_key(admin[1])),
        sa_public=_write(directory / "sa.pub", sa_public),
        sa_private=_write(directory / "sa.key", _pem_key(sa_key)),
    )
