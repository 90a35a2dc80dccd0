"""Issued credentials on real components: OpenBao's database engine against PostgreSQL
(from Debian's packages) and its PKI engine (docs/design/0010-leases.md).

Every test runs an operator of its own, watching only its namespace, so that it can be
stopped and started again; OpenBao is reached through a recording proxy, which also
takes it "down" for the outage case. Credentials are checked the way a user would:
by logging in to PostgreSQL with them, and by verifying the certificate."""

from __future__ import annotations

import base64
import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from harness import kube, leaks, leasesetup, postgres, scenario, vaultengines
from harness import operator as op
from harness.devenv import DevEnv
from harness.faultproxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]


@pytest.fixture
def bao(env: DevEnv) -> Iterator[FaultProxy]:
    """A recording proxy in front of OpenBao: every call the operator makes, by path."""
    proxy = FaultProxy(env.vault_addr)
    yield proxy
    proxy.stop()


@pytest.fixture
def team(env: DevEnv, api: Any, namespace: str, bao: FaultProxy) -> str:
    leasesetup.bind(env, api, namespace)
    scenario.apply(env, leasesetup.store(env, namespace, server=bao.url))
    return namespace


@pytest.fixture
def own_operator(env: DevEnv, team: str, operator_log: Path) -> Iterator[None]:
    with op.running(env, operator_log, "--namespace", team):
        yield


def login(env: DevEnv, data: dict[str, bytes]) -> str | None:
    """The user PostgreSQL says we are, logging in with the synced credentials; None
    when the login is refused."""
    result = postgres.psql(
        env.pg, data["username"].decode(), data["password"].decode(), "select current_user"
    )
    return result.stdout.strip() if result.returncode == 0 else None


def synced_login(env: DevEnv, api: Any, team: str, secret_values: set[bytes]) -> dict[str, bytes]:
    """SecretSync `db` of the team's database role, once Synced: its Secret's data."""
    scenario.apply(env, leasesetup.database_sync(team, "db"))
    scenario.wait_for_reason(api, team, "db", "Synced")
    data = scenario.secret_data(api, team, "db")
    assert data is not None
    secret_values.add(data["password"])
    return data


def replaced(api: Any, namespace: str, name: str, key: str, old: bytes) -> dict[str, bytes] | None:
    """The Secret's data once its `key` no longer holds `old`."""
    data = scenario.secret_data(api, namespace, name)
    return data if data is not None and data.get(key) != old else None


def lease_status(api: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict((scenario.get_sync(api, namespace, name).get("status") or {}).get("lease") or {})


def restarts(api: Any, namespace: str, name: str) -> int:
    """How often the operator restarted the Deployment: each restart sets the pod
    template's data-hash annotation anew, which bumps the generation."""
    dep: Any = kubernetes.client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    return int(dep.metadata.generation) - 1


def test_database_credentials_log_in_and_renewal_extends_the_lease_in_vault(
    env: DevEnv, api: Any, team: str, own_operator: None, secret_values: set[bytes]
) -> None:
    vaultengines.database_role(env, team, default_ttl="12s", max_ttl="10m")
    scenario.apply(
        env,
        leasesetup.database_sync(
            team,
            "db",
            target={
                "template": {
                    "data": {
                        "username": "{{ username }}",
                        "password": "{{ password }}",
                        "url": f"postgresql://{{{{ username }}}}:{{{{ password }}}}@127.0.0.1:"
                        f"{env.postgres_port}/postgres",
                    }
                }
            },
        ),
    )
    scenario.wait_for_reason(api, team, "db", "Synced")
    data = scenario.secret_data(api, team, "db")
    assert data is not None
    secret_values.add(data["password"])
    assert login(env, data) == data["username"].decode()
    assert data["url"].decode().startswith(f"postgresql://{data['username'].decode()}:")
    [lease_id] = leasesetup.database_leases(env, team)
    first = vaultengines.lease(env, lease_id)
    status = lease_status(api, team, "db")
    assert status["renewals"] == 0
    assert status["expiresAt"]

    # Renewed at two thirds of 12 s: Vault's lease ends later than it first did.
    kube.eventually(
        lambda: lease_status(api, team, "db").get("renewals", 0) >= 2,
        timeout=30,
        what="two renewals",
    )
    renewed = vaultengines.lease(env, lease_id)
    assert renewed["last_renewal"] is not None
    assert renewed["expire_time"] > first["expire_time"]
    assert leasesetup.database_leases(env, team) == [lease_id], "renewal issued nothing new"
    assert scenario.secret_data(api, team, "db") == data, "renewal does not rewrite the Secret"
    time.sleep(13)  # past the first lease's TTL: it lives on only because it was renewed
    assert login(env, data) == data["username"].decode()


def test_a_max_ttl_forces_a_reissue_that_overlaps_the_old_credentials_which_are_then_revoked(
    env: DevEnv, api: Any, team: str, own_operator: None, secret_values: set[bytes]
) -> None:
    # TTL 20 s, max 40 s, act at half the TTL: renewed at 10 s (to 30 s), at 20 s (to 40 s,
    # the max); at 30 s the renewal is capped at 10 s, so new credentials are issued with
    # 10 s of the old ones left, and the old ones are revoked 3 s later, before their end.
    vaultengines.database_role(env, team, default_ttl="20s", max_ttl="40s")
    scenario.apply(
        env,
        scenario.deployment(team, "api"),
        leasesetup.database_sync(
            team,
            "db",
            lease={"renewPercent": 50, "revokeGracePeriod": "3s"},
            rollout={"restart": [{"kind": "Deployment", "name": "api"}]},
        ),
    )
    scenario.wait_for_reason(api, team, "db", "Synced")
    old = scenario.secret_data(api, team, "db")
    assert old is not None
    secret_values.add(old["password"])
    [old_lease] = leasesetup.database_leases(env, team)
    issued = datetime.datetime.fromisoformat(vaultengines.lease(env, old_lease)["issue_time"])
    old_end = issued + datetime.timedelta(seconds=40)
    assert restarts(api, team, "api") == 0, "the first issue restarts nothing"

    new = kube.eventually(
        lambda: replaced(api, team, "db", "password", old["password"]),
        timeout=45,
        what="new credentials before the old reach their max TTL",
        interval=0.1,
    )
    secret_values.add(new["password"])
    assert new["username"] != old["username"]
    assert login(env, old) == old["username"].decode(), "the old credentials work in the overlap"
    assert login(env, new) == new["username"].decode()
    kube.eventually(
        lambda: login(env, old) is None, timeout=15, what="the old credentials to be revoked"
    )
    now = datetime.datetime.now(datetime.UTC)
    assert now < old_end, "the old credentials were revoked, not left to expire"
    assert old_lease not in leasesetup.database_leases(env, team)
    assert login(env, new) == new["username"].decode()
    kube.eventually(
        lambda: restarts(api, team, "api") == 1, timeout=10, what="one restart for the re-issue"
    )
    assert lease_status(api, team, "db")["reissues"] == 1
    time.sleep(3)
    assert restarts(api, team, "api") == 1, "restarted once per re-issue"


def test_deleting_the_secretsync_revokes_its_lease(
    env: DevEnv, api: Any, team: str, own_operator: None, secret_values: set[bytes]
) -> None:
    vaultengines.database_role(env, team, default_ttl="10m", max_ttl="1h")
    data = synced_login(env, api, team, secret_values)
    assert login(env, data) is not None
    assert len(leasesetup.database_leases(env, team)) == 1
    assert scenario.secret(api, team, "secretsync-lease-db") is not None
    env.kubectl("delete", scenario.SECRET_SYNCS, "-n", team, "db")
    kube.eventually(lambda: login(env, data) is None, timeout=20, what="the login to be refused")
    assert leasesetup.database_leases(env, team) == []
    kube.eventually(
        lambda: scenario.secret(api, team, "secretsync-lease-db") is None,
        timeout=10,
        what="the lease state to be deleted",
    )


def test_operator_restarts_issue_nothing_new(
    env: DevEnv, api: Any, team: str, operator_log: Path, bao: FaultProxy, secret_values: set[bytes]
) -> None:
    vaultengines.database_role(env, team, default_ttl="10m", max_ttl="1h")
    scenario.apply(env, *(leasesetup.database_sync(team, f"db{i}") for i in range(3)))
    with op.running(env, operator_log, "--namespace", team):
        for i in range(3):
            scenario.wait_for_reason(api, team, f"db{i}", "Synced")
    before = sorted(leasesetup.database_leases(env, team))
    assert len(before) == 3
    data = {i: scenario.secret_data(api, team, f"db{i}") for i in range(3)}
    for one in data.values():
        assert one is not None
        secret_values.add(one["password"])
    issued = len([c for c in bao.snapshot() if c.vault_path.startswith("database/creds/")])
    for _ in range(3):
        with op.running(env, operator_log, "--namespace", team):
            time.sleep(4)  # every SecretSync runs a round at start-up
            for i in range(3):
                assert scenario.ready(scenario.get_sync(api, team, f"db{i}"))["reason"] == "Synced"  # type: ignore[index]
    after = sorted(leasesetup.database_leases(env, team))
    assert after == before, "a restart issued or revoked leases"
    # Lease ids are as good as credentials to whoever may renew or revoke them: they are
    # in the state Secrets' data only, never in a log, an Event, a status or an annotation.
    ids = {lease.rsplit("/", 1)[1].encode() for lease in after}
    secret_values.update(ids)
    sources = {"operator log": operator_log.read_bytes(), **leaks.cluster_sources(api)}
    assert leaks.find(sources, ids | {d["password"] for d in data.values() if d}) == []
    calls = [c for c in bao.snapshot() if c.vault_path.startswith("database/creds/")]
    assert len(calls) == issued
    assert {i: scenario.secret_data(api, team, f"db{i}") for i in range(3)} == data
    for one in data.values():
        assert one is not None
        assert login(env, one) is not None


def test_vault_down_longer_than_a_renewal_keeps_the_last_good_credentials_and_says_until_when(
    env: DevEnv, api: Any, team: str, own_operator: None, bao: FaultProxy, secret_values: set[bytes]
) -> None:
    # TTL 40 s, renewed at 27 s: OpenBao is down from the start until 5 s after that renewal
    # failed, and back 8 s before the lease would end.
    vaultengines.database_role(env, team, default_ttl="40s", max_ttl="10m")
    data = synced_login(env, api, team, secret_values)
    expires = lease_status(api, team, "db")["expiresAt"]
    bao.stop()
    try:
        obj = scenario.wait_for_reason(api, team, "db", "ProviderUnavailable", timeout=40)
        message = scenario.condition(obj)["message"]
        assert f"which expire at {expires}" in message, message
        assert lease_status(api, team, "db")["expiresAt"] == expires
        time.sleep(5)  # past the renewal that could not happen
        assert scenario.secret_data(api, team, "db") == data, "the last good Secret is kept"
    finally:
        bao.start()
    # Back before the lease ended: renewed, the same credentials go on working.
    kube.eventually(
        lambda: lease_status(api, team, "db").get("expiresAt") != expires,
        timeout=20,
        what="a renewal once OpenBao is back",
    )
    assert scenario.secret_data(api, team, "db") == data
    assert login(env, data) == data["username"].decode()


def test_a_certificate_verifies_against_the_ca_and_is_reissued_at_its_renew_percent(
    env: DevEnv, api: Any, team: str, own_operator: None
) -> None:
    vaultengines.pki_role(env, team)
    host = f"app.{team}.{vaultengines.PKI_DOMAIN}"
    scenario.apply(
        env,
        leasesetup.certificate_sync(
            team,
            "tls",
            {
                "commonName": host,
                "altNames": [f"www.{team}.{vaultengines.PKI_DOMAIN}"],
                "ipSans": ["127.0.0.1"],
                "ttl": "30s",
            },
            lease={"renewPercent": 50},
        ),
    )
    scenario.wait_for_reason(api, team, "tls", "Synced")
    first_seen = time.time()
    obj = scenario.secret(api, team, "tls")
    assert obj.type == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in obj.data.items()}
    assert set(data) == {"tls.crt", "tls.key", "ca.crt"}
    chain = x509.load_pem_x509_certificates(data["tls.crt"])
    leaf, ca = chain[0], x509.load_pem_x509_certificate(data["ca.crt"])
    assert (
        ca.public_bytes(serialization_pem()).decode().strip() == vaultengines.root_ca(env).strip()
    ), "ca.crt is the PKI mount's root"
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) >= {host, f"www.{team}.secretsync.test"}
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == host
    key = serialization_key(data["tls.key"])
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    lifetime = (leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC)).total_seconds()
    assert 20 < lifetime <= 31

    renewed = kube.eventually(
        lambda: replaced(api, team, "tls", "tls.crt", data["tls.crt"]),
        timeout=40,
        what="a new certificate",
        interval=0.2,
    )
    after = time.time() - first_seen
    # Half of a 30 s lifetime is 15 s after issue; the Secret was first seen just after it.
    assert 10 < after < 20, f"re-issued {after:.1f}s after the first, not at half its life"
    new_leaf = x509.load_pem_x509_certificates(renewed["tls.crt"])[0]
    new_leaf.verify_directly_issued_by(ca)
    assert new_leaf.serial_number != leaf.serial_number
    assert lease_status(api, team, "tls")["reissues"] >= 1


def serialization_pem() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


def serialization_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key
