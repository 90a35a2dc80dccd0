"""The Vault provider against the real OpenBao of the local environment.

What the shared conformance suite cannot say: every auth method logs in for
real (kubernetes through the apiserver's TokenReview, AppRole, JWT verified
with the apiserver's signing key, a plain token), session lifetimes, the
Enterprise namespace header, KV v1/v2 specifics, and how failures map to the
operator's errors without ever carrying a value.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import shutil
import ssl
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import kubernetes
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness import kube
from harness.devenv import DevEnv, bao_request
from harness.processes import Processes, free_port, http_ok
from secretsync.errors import (
    AccessDeniedError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailableError,
    SecretNotFoundError,
)
from secretsync.models.remote import FindQuery, ObservingGate, RemoteRef, RemoteValue
from secretsync.models.store import VaultProvider
from secretsync.providers.base import LoginMaterial, SecretsClient, Session
from secretsync.providers.vault import VaultBackend

# A gate that only lets calls through: these tests count calls where they need to.
QUIET = ObservingGate(lambda operation, outcome: None)

pytestmark = pytest.mark.integration

T = TypeVar("T")
AUDIENCE = "vault"
SERVICE_ACCOUNT = "team-a-sync"


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def bao(env: DevEnv, method: str, path: str, body: object = None) -> Any:
    """An OpenBao call as root."""
    return bao_request(env.vault_addr, env.vault_token, method, path, body)


def bao_in_namespace(
    env: DevEnv, namespace: str, method: str, path: str, body: object = None
) -> Any:
    """An OpenBao call as root inside an OpenBao namespace (X-Vault-Namespace)."""
    request = urllib.request.Request(  # noqa: S310 - the local OpenBao
        f"{env.vault_addr}/v1/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"X-Vault-Token": env.vault_token, "X-Vault-Namespace": namespace},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        text = resp.read()
    return json.loads(text) if text else None


def spec(env: DevEnv, auth: dict[str, Any], **fields: Any) -> VaultProvider:
    return VaultProvider.model_validate({"server": env.vault_addr, "auth": auth, **fields})


def token_auth() -> dict[str, Any]:
    return {"token": {"secretRef": {"name": "vault-token", "key": "token"}}}


def kubernetes_auth(role: str, mount: str = "kubernetes") -> dict[str, Any]:
    return {
        "kubernetes": {
            "mountPath": mount,
            "role": role,
            "serviceAccount": {"name": SERVICE_ACCOUNT, "audiences": [AUDIENCE]},
        }
    }


def root_material(env: DevEnv) -> LoginMaterial:
    return LoginMaterial(secrets={"token": env.vault_token.encode()})


def put_v2(env: DevEnv, key: str, data: dict[str, str], mount: str = "secret") -> int:
    """Write a KV v2 secret as root; the new version number."""
    return int(bao(env, "POST", f"{mount}/data/{key}", {"data": data})["data"]["version"])


def policy(env: DevEnv, name: str, *rules: tuple[str, str]) -> str:
    text = "\n".join(f'path "{path}" {{ capabilities = [{caps}] }}' for path, caps in rules)
    bao(env, "PUT", f"sys/policies/acl/{name}", {"policy": text})
    return name


def read_policy(env: DevEnv, folder: str, mount: str = "secret") -> str:
    """A policy reading and listing KV v2 secrets under folder/ only."""
    return policy(
        env,
        unique("read"),
        (f"{mount}/data/{folder}/*", '"read", "list"'),
        (f"{mount}/metadata/{folder}/*", '"read", "list"'),
    )


def create_service_account(api: Any, namespace: str, name: str = SERVICE_ACCOUNT) -> None:
    kubernetes.client.CoreV1Api(api).create_namespaced_service_account(
        namespace,
        kubernetes.client.V1ServiceAccount(metadata=kubernetes.client.V1ObjectMeta(name=name)),
    )


def sa_token(api: Any, namespace: str, name: str = SERVICE_ACCOUNT) -> str:
    return kube.token_request(
        api, namespace=namespace, service_account=name, audiences=[AUDIENCE], seconds=3600
    )


def kubernetes_role(env: DevEnv, namespace: str, policies: list[str], ttl: str = "10m") -> str:
    role = unique("role")
    bao(
        env,
        "POST",
        f"auth/kubernetes/role/{role}",
        {
            "bound_service_account_names": [SERVICE_ACCOUNT],
            "bound_service_account_namespaces": [namespace],
            "audience": AUDIENCE,
            "token_policies": policies,
            "token_ttl": ttl,
        },
    )
    return role


async def login_and_fetch(
    backend: VaultBackend, material: LoginMaterial, refs: list[RemoteRef]
) -> tuple[Session, dict[RemoteRef, RemoteValue | ProviderError]]:
    session = await backend.login(material)
    client = backend.client(session, QUIET)
    try:
        return session, dict(await client.fetch(refs))
    finally:
        await client.close()


def value_of(result: RemoteValue | ProviderError) -> dict[str, str]:
    assert isinstance(result, RemoteValue), result
    data: dict[str, str] = json.loads(result.value)
    return data


class Reader:
    """A least-privilege identity (kubernetes auth) reading secret/<folder>/ and nothing else."""

    def __init__(self, env: DevEnv, api: Any, namespace: str) -> None:
        self.env = env
        self.folder = unique("team")
        create_service_account(api, namespace)
        self.role = kubernetes_role(env, namespace, [read_policy(env, self.folder)])
        self.material = LoginMaterial(service_account_token=sa_token(api, namespace))
        self.backend = VaultBackend(spec(env, kubernetes_auth(self.role)))

    def key(self, name: str) -> str:
        return f"{self.folder}/{name}"

    async def client(self, observe: Any = None) -> SecretsClient:
        session = await self.backend.login(self.material)
        return self.backend.client(session, ObservingGate(observe) if observe else QUIET)


@pytest.fixture
def reader(env: DevEnv, api: Any, namespace: str) -> Reader:
    return Reader(env, api, namespace)


# --- logging in ---------------------------------------------------------------------------


def test_kubernetes_login_with_a_token_request_token_reads_as_the_role(
    env: DevEnv, api: Any, namespace: str
) -> None:
    folder = unique("team")
    put_v2(env, f"{folder}/db", {"password": "kube-login-value"})
    create_service_account(api, namespace)
    role = kubernetes_role(env, namespace, [read_policy(env, folder)], ttl="10m")
    backend = VaultBackend(spec(env, kubernetes_auth(role)))

    before = time.time()
    session, results = run(
        login_and_fetch(
            backend,
            LoginMaterial(service_account_token=sa_token(api, namespace)),
            [RemoteRef(f"{folder}/db")],
        )
    )

    assert session.identity == f"vault:kubernetes/kubernetes/{role}"
    assert session.expires_at is not None
    assert before + 600 - 5 <= session.expires_at <= time.time() + 600 + 5
    assert value_of(results[RemoteRef(f"{folder}/db")]) == {"password": "kube-login-value"}


def test_kubernetes_login_refuses_a_service_account_the_role_does_not_bind(
    env: DevEnv, api: Any, namespace: str
) -> None:
    create_service_account(api, namespace)
    create_service_account(api, namespace, "intruder")
    role = kubernetes_role(env, namespace, [read_policy(env, unique("team"))])
    backend = VaultBackend(spec(env, kubernetes_auth(role)))
    intruder = LoginMaterial(service_account_token=sa_token(api, namespace, "intruder"))

    with pytest.raises(ProviderAuthError) as caught:
        run(backend.login(intruder))

    assert not isinstance(caught.value, AccessDeniedError)
    assert "auth/kubernetes/login" in str(caught.value)


def test_kubernetes_login_refuses_a_token_for_another_audience(
    env: DevEnv, api: Any, namespace: str
) -> None:
    create_service_account(api, namespace)
    role = kubernetes_role(env, namespace, [read_policy(env, unique("team"))])
    backend = VaultBackend(spec(env, kubernetes_auth(role)))
    token = kube.token_request(
        api,
        namespace=namespace,
        service_account=SERVICE_ACCOUNT,
        audiences=["sts.amazonaws.com"],
        seconds=3600,
    )

    with pytest.raises(ProviderAuthError):
        run(backend.login(LoginMaterial(service_account_token=token)))


def test_approle_login_uses_the_role_id_from_the_spec_and_the_secret_id_from_material(
    env: DevEnv,
) -> None:
    mount = unique("approle")
    folder = unique("team")
    put_v2(env, f"{folder}/db", {"password": "approle-value"})
    bao(env, "POST", f"sys/auth/{mount}", {"type": "approle"})
    bao(
        env,
        "POST",
        f"auth/{mount}/role/sync",
        {"token_policies": [read_policy(env, folder)], "token_ttl": "5m"},
    )
    role_id = bao(env, "GET", f"auth/{mount}/role/sync/role-id")["data"]["role_id"]
    secret_id = bao(env, "POST", f"auth/{mount}/role/sync/secret-id")["data"]["secret_id"]
    backend = VaultBackend(
        spec(
            env,
            {
                "appRole": {
                    "mountPath": mount,
                    "roleId": role_id,
                    "secretIdRef": {"name": "approle", "key": "secret-id"},
                }
            },
        )
    )

    before = time.time()
    session, results = run(
        login_and_fetch(
            backend,
            # A trailing newline, as `kubectl create secret --from-file` leaves it.
            LoginMaterial(secrets={"secretId": f"{secret_id}\n".encode()}),
            [RemoteRef(f"{folder}/db")],
        )
    )

    assert session.identity == f"vault:approle/{mount}/{role_id}"
    assert session.expires_at is not None
    assert before + 300 - 5 <= session.expires_at <= time.time() + 300 + 5
    assert value_of(results[RemoteRef(f"{folder}/db")]) == {"password": "approle-value"}

    wrong = LoginMaterial(secrets={"secretId": str(uuid.uuid4()).encode()})
    with pytest.raises(ProviderAuthError) as caught:
        run(backend.login(wrong))
    assert not isinstance(caught.value, AccessDeniedError)


def apiserver_signing_key_pem(api: Any) -> str:
    """The apiserver's ServiceAccount signing key, from its OIDC JWKS, as PEM."""
    response = api.call_api("GET", f"{api.configuration.host}/openid/v1/jwks")
    response.read()
    (jwk,) = json.loads(response.data)["keys"]
    assert jwk["kty"] == "RSA"

    def number(field: str) -> int:
        raw = base64.urlsafe_b64decode(jwk[field] + "=" * (-len(jwk[field]) % 4))
        return int.from_bytes(raw, "big")

    key = rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_jwt_login_verifies_the_service_account_token_with_the_apiserver_key(
    env: DevEnv, api: Any, namespace: str
) -> None:
    mount = unique("jwt")
    folder = unique("team")
    put_v2(env, f"{folder}/db", {"password": "jwt-value"})
    create_service_account(api, namespace)
    create_service_account(api, namespace, "intruder")
    bao(env, "POST", f"sys/auth/{mount}", {"type": "jwt"})
    bao(
        env,
        "POST",
        f"auth/{mount}/config",
        {
            "jwt_validation_pubkeys": [apiserver_signing_key_pem(api)],
            "bound_issuer": env.api_server,
        },
    )
    bao(
        env,
        "POST",
        f"auth/{mount}/role/team-a",
        {
            "role_type": "jwt",
            "bound_audiences": [AUDIENCE],
            "user_claim": "sub",
            "bound_subject": f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}",
            "token_policies": [read_policy(env, folder)],
            "token_ttl": "15m",
        },
    )
    jwt_auth = {
        "jwt": {
            "mountPath": mount,
            "role": "team-a",
            "serviceAccount": {"name": SERVICE_ACCOUNT, "audiences": [AUDIENCE]},
        }
    }
    backend = VaultBackend(spec(env, jwt_auth))

    before = time.time()
    session, results = run(
        login_and_fetch(
            backend,
            LoginMaterial(service_account_token=sa_token(api, namespace)),
            [RemoteRef(f"{folder}/db")],
        )
    )

    assert session.identity == f"vault:jwt/{mount}/team-a"
    assert session.expires_at is not None
    assert before + 900 - 5 <= session.expires_at <= time.time() + 900 + 5
    assert value_of(results[RemoteRef(f"{folder}/db")]) == {"password": "jwt-value"}

    intruder = LoginMaterial(service_account_token=sa_token(api, namespace, "intruder"))
    with pytest.raises(ProviderAuthError):
        run(backend.login(intruder))


def test_token_auth_learns_the_token_ttl_from_lookup_self(env: DevEnv) -> None:
    folder = unique("team")
    put_v2(env, f"{folder}/db", {"password": "token-value"})
    created = bao(
        env, "POST", "auth/token/create", {"policies": [read_policy(env, folder)], "ttl": "15m"}
    )
    token = created["auth"]["client_token"]
    backend = VaultBackend(spec(env, token_auth()))

    before = time.time()
    session, results = run(
        login_and_fetch(
            backend,
            LoginMaterial(secrets={"token": f"{token}\n".encode()}),
            [RemoteRef(f"{folder}/db")],
        )
    )

    assert session.identity == "vault:token"
    assert session.expires_at is not None
    assert before + 900 - 5 <= session.expires_at <= time.time() + 900 + 5
    assert value_of(results[RemoteRef(f"{folder}/db")]) == {"password": "token-value"}


def test_a_token_without_ttl_never_expires(env: DevEnv) -> None:
    session = run(VaultBackend(spec(env, token_auth())).login(root_material(env)))

    assert session.expires_at is None


def test_a_revoked_token_is_refused_at_login(env: DevEnv) -> None:
    token = bao(env, "POST", "auth/token/create", {"policies": ["default"], "ttl": "5m"})
    client_token = token["auth"]["client_token"]
    bao(env, "POST", "auth/token/revoke", {"token": client_token})

    with pytest.raises(ProviderAuthError) as caught:
        run(
            VaultBackend(spec(env, token_auth())).login(
                LoginMaterial(secrets={"token": client_token.encode()})
            )
        )

    assert not isinstance(caught.value, AccessDeniedError)


def test_a_token_revoked_after_login_is_reported_as_an_auth_failure_not_a_denial(
    env: DevEnv,
) -> None:
    # Vault answers 403 both to a policy denial and to a dead token; the
    # engine must log in again for the second, so the provider tells them apart.
    folder = unique("team")
    put_v2(env, f"{folder}/db", {"password": "x"})
    created = bao(
        env, "POST", "auth/token/create", {"policies": [read_policy(env, folder)], "ttl": "5m"}
    )
    token = created["auth"]["client_token"]
    backend = VaultBackend(spec(env, token_auth()))

    async def scenario() -> None:
        session = await backend.login(LoginMaterial(secrets={"token": token.encode()}))
        client = backend.client(session, QUIET)
        try:
            assert isinstance(
                (await client.fetch([RemoteRef(f"{folder}/db")]))[RemoteRef(f"{folder}/db")],
                RemoteValue,
            )
            bao(env, "POST", "auth/token/revoke", {"token": token})
            with pytest.raises(ProviderAuthError) as caught:
                await client.fetch([RemoteRef(f"{folder}/db")])
            assert not isinstance(caught.value, AccessDeniedError)
            with pytest.raises(ProviderAuthError):
                await client.validate()
        finally:
            await client.close()

    run(scenario())


# --- Vault Enterprise namespaces (OpenBao implements them too) ----------------------------


def test_the_namespace_header_reaches_the_server(env: DevEnv) -> None:
    ns = unique("tenant")
    mount = unique("kv")
    kv2 = {"type": "kv", "options": {"version": "2"}}
    bao(env, "POST", f"sys/namespaces/{ns}", {})
    bao_in_namespace(env, ns, "POST", f"sys/mounts/{mount}", kv2)
    bao_in_namespace(env, ns, "POST", f"{mount}/data/team/db", {"data": {"where": "inside"}})
    # The same path outside the namespace holds something else.
    bao(env, "POST", f"sys/mounts/{mount}", kv2)
    bao(env, "POST", f"{mount}/data/team/db", {"data": {"where": "root"}})
    rule = f'path "{mount}/data/team/*" {{ capabilities = ["read"] }}'
    bao_in_namespace(env, ns, "PUT", "sys/policies/acl/reader", {"policy": rule})
    created = bao_in_namespace(
        env, ns, "POST", "auth/token/create", {"policies": ["reader"], "ttl": "5m"}
    )
    scoped = LoginMaterial(secrets={"token": created["auth"]["client_token"].encode()})
    inside = VaultBackend(spec(env, token_auth(), namespace=ns, path=mount))
    outside = VaultBackend(spec(env, token_auth(), path=mount))
    ref = RemoteRef("team/db")

    # The root token may read both: only the header decides which one it gets.
    assert value_of(run(login_and_fetch(inside, root_material(env), [ref]))[1][ref]) == {
        "where": "inside"
    }
    assert value_of(run(login_and_fetch(outside, root_material(env), [ref]))[1][ref]) == {
        "where": "root"
    }
    # A token of the namespace reads there, and its policy means nothing outside.
    assert value_of(run(login_and_fetch(inside, scoped, [ref]))[1][ref]) == {"where": "inside"}
    assert isinstance(run(login_and_fetch(outside, scoped, [ref]))[1][ref], AccessDeniedError)


def test_an_unknown_namespace_is_a_configuration_error_never_not_found(env: DevEnv) -> None:
    # "not found" may delete synced data (deletionPolicy Delete); a typo in
    # spec.namespace must not.
    backend = VaultBackend(spec(env, token_auth(), namespace=unique("no-such-namespace")))
    with pytest.raises(ProviderConfigError):
        run(backend.login(root_material(env)))

    # The root token is valid everywhere, so only the namespace can be wrong.
    session = run(VaultBackend(spec(env, token_auth())).login(root_material(env)))

    async def fetch() -> RemoteValue | ProviderError:
        client = backend.client(session, QUIET)
        try:
            return (await client.fetch([RemoteRef("team/db")]))[RemoteRef("team/db")]
        finally:
            await client.close()

    result = run(fetch())
    assert isinstance(result, ProviderConfigError)
    assert not isinstance(result, SecretNotFoundError)


# --- KV v2 ------------------------------------------------------------------------------------


def test_kv2_reads_the_current_or_a_pinned_version_as_compact_sorted_json(
    env: DevEnv, reader: Reader
) -> None:
    key = reader.key("db")
    put_v2(env, key, {"user": "app", "password": "first"})
    put_v2(env, key, {"user": "app", "password": "sécond"})

    async def scenario() -> dict[RemoteRef, RemoteValue | ProviderError]:
        client = await reader.client()
        try:
            return dict(
                await client.fetch([RemoteRef(key), RemoteRef(key, "1"), RemoteRef(key, "1")])
            )
        finally:
            await client.close()

    results = run(scenario())

    current, pinned = results[RemoteRef(key)], results[RemoteRef(key, "1")]
    assert isinstance(current, RemoteValue)
    assert isinstance(pinned, RemoteValue)
    assert current.value == '{"password":"sécond","user":"app"}'.encode()
    assert current.version == "2"
    assert pinned.value == b'{"password":"first","user":"app"}'
    assert pinned.version == "1"
    assert len(results) == 2


def test_kv2_deleted_and_destroyed_versions_count_as_not_found(env: DevEnv, reader: Reader) -> None:
    key = reader.key("rotated")
    for password in ("one", "two", "three"):
        put_v2(env, key, {"password": password})
    bao(env, "POST", f"secret/destroy/{key}", {"versions": [1]})
    bao(env, "DELETE", f"secret/data/{key}")  # soft-deletes the current version, 3
    refs = [RemoteRef(key), RemoteRef(key, "1"), RemoteRef(key, "2"), RemoteRef(key, "9")]

    async def scenario() -> tuple[Any, Any]:
        client = await reader.client()
        try:
            return await client.fetch(refs), await client.versions(refs)
        finally:
            await client.close()

    results, versions = run(scenario())

    assert isinstance(results[RemoteRef(key)], SecretNotFoundError)
    assert isinstance(results[RemoteRef(key, "1")], SecretNotFoundError)
    assert isinstance(results[RemoteRef(key, "9")], SecretNotFoundError)
    assert value_of(results[RemoteRef(key, "2")]) == {"password": "two"}
    # Only the live version has a version to compare; the rest must be fetched.
    assert versions == {RemoteRef(key, "2"): "2"}


def test_kv2_versions_read_the_metadata_never_the_data(
    env: DevEnv, api: Any, namespace: str
) -> None:
    folder = unique("team")
    key = f"{folder}/db"
    put_v2(env, key, {"password": "v1"})
    create_service_account(api, namespace)
    metadata_only = policy(env, unique("meta"), (f"secret/metadata/{folder}/*", '"read"'))
    role = kubernetes_role(env, namespace, [metadata_only])
    backend = VaultBackend(spec(env, kubernetes_auth(role)))
    material = LoginMaterial(service_account_token=sa_token(api, namespace))

    async def scenario() -> tuple[Any, Any, Any]:
        client = backend.client(await backend.login(material), QUIET)
        try:
            before = await client.versions([RemoteRef(key)])
            put_v2(env, key, {"password": "v2"})
            after = await client.versions([RemoteRef(key)])
            fetched = await client.fetch([RemoteRef(key)])
            return before, after, fetched
        finally:
            await client.close()

    before, after, fetched = run(scenario())

    assert before == {RemoteRef(key): "1"}
    assert after == {RemoteRef(key): "2"}
    # The identity could not have read the data: the change check did not need to.
    assert isinstance(fetched[RemoteRef(key)], AccessDeniedError)


def test_a_secret_outside_the_policy_is_access_denied(env: DevEnv, reader: Reader) -> None:
    outside = unique("other-team") + "/db"
    put_v2(env, outside, {"password": "not-yours"})

    async def scenario() -> tuple[Any, Any]:
        client = await reader.client()
        try:
            return await client.fetch([RemoteRef(outside)]), await client.versions(
                [RemoteRef(outside)]
            )
        finally:
            await client.close()

    results, versions = run(scenario())

    assert isinstance(results[RemoteRef(outside)], AccessDeniedError)
    assert outside in str(results[RemoteRef(outside)])
    assert versions == {}


def test_find_walks_folders_matches_the_full_path_and_skips_deleted_secrets(
    env: DevEnv, reader: Reader
) -> None:
    for name in ("app/db-main", "app/nested/db-replica", "app/cache", "app/db-old", "web/db-x"):
        put_v2(env, reader.key(name), {"v": name})
    bao(env, "DELETE", f"secret/data/{reader.key('app/db-old')}")
    app = reader.key("app")

    async def scenario() -> list[list[str]]:
        client = await reader.client()
        try:
            queries = [
                FindQuery(path=app, name_regexp="db-"),
                FindQuery(path=app + "/"),
                FindQuery(path=reader.folder, name_regexp="/nested/"),
                FindQuery(path=reader.key("nothing-here")),
            ]
            return [sorted(r.key for r in await client.find(q)) for q in queries]
        finally:
            await client.close()

    by_name, everything, nested, empty = run(scenario())

    assert by_name == [reader.key("app/db-main"), reader.key("app/nested/db-replica")]
    assert everything == [
        reader.key("app/cache"),
        reader.key("app/db-main"),
        reader.key("app/nested/db-replica"),
    ]
    assert nested == [reader.key("app/nested/db-replica")]
    assert empty == []


def test_find_over_the_whole_mount_skips_folders_the_policy_hides(
    env: DevEnv, api: Any, namespace: str
) -> None:
    folder, hidden = unique("team"), unique("hidden")
    put_v2(env, f"{folder}/db-mine", {"v": "1"})
    put_v2(env, f"{hidden}/db-theirs", {"v": "2"})
    create_service_account(api, namespace)
    rules = policy(
        env,
        unique("find"),
        (f"secret/metadata/{folder}/*", '"read", "list"'),
        ("secret/metadata/", '"list"'),
    )
    backend = VaultBackend(spec(env, kubernetes_auth(kubernetes_role(env, namespace, [rules]))))
    material = LoginMaterial(service_account_token=sa_token(api, namespace))

    async def scenario() -> list[str]:
        client = backend.client(await backend.login(material), QUIET)
        try:
            found = await client.find(FindQuery(name_regexp="/db-"))
            with pytest.raises(AccessDeniedError):
                await client.find(FindQuery(path=hidden))
            return sorted(r.key for r in found)
        finally:
            await client.close()

    found = run(scenario())

    assert f"{folder}/db-mine" in found
    assert f"{hidden}/db-theirs" not in found


def test_find_by_tags_is_refused_for_vault(env: DevEnv, reader: Reader) -> None:
    async def scenario() -> None:
        client = await reader.client()
        try:
            await client.find(FindQuery(path=reader.folder, tags=(("env", "prod"),)))
        finally:
            await client.close()

    with pytest.raises(ProviderConfigError, match="only supported by AWS"):
        run(scenario())


def test_each_http_call_is_observed_once_and_duplicates_are_read_once(
    env: DevEnv, reader: Reader
) -> None:
    key = reader.key("db")
    put_v2(env, key, {"password": "x"})
    calls: list[tuple[str, str]] = []

    async def scenario() -> None:
        client = await reader.client(lambda op, outcome: calls.append((op, outcome)))
        try:
            await client.fetch([RemoteRef(key), RemoteRef(key), RemoteRef(reader.key("nope"))])
            await client.versions([RemoteRef(key)])
        finally:
            await client.close()

    run(scenario())

    assert sorted(calls) == [
        ("kv.metadata", "success"),
        ("kv.read", "error"),
        ("kv.read", "success"),
    ]


def test_keys_that_would_leave_the_mount_are_refused(env: DevEnv, reader: Reader) -> None:
    calls: list[tuple[str, str]] = []
    bad = [RemoteRef(f"{reader.folder}/../../sys/policy"), RemoteRef(f"{reader.folder}/")]

    async def scenario() -> Any:
        client = await reader.client(lambda op, outcome: calls.append((op, outcome)))
        try:
            return await client.fetch(bad)
        finally:
            await client.close()

    results = run(scenario())

    assert all(isinstance(results[ref], ProviderConfigError) for ref in bad)
    assert calls == []


def test_validate_accepts_the_right_kv_version_and_names_the_wrong_one(
    env: DevEnv, reader: Reader
) -> None:
    as_v1 = VaultBackend(spec(env, kubernetes_auth(reader.role), version="v1"))

    async def validate(backend: VaultBackend) -> None:
        client = backend.client(await backend.login(reader.material), QUIET)
        try:
            await client.validate()
        finally:
            await client.close()

    run(validate(reader.backend))
    with pytest.raises(ProviderConfigError, match="KV v2"):
        run(validate(as_v1))


# --- KV v1 ------------------------------------------------------------------------------------


@pytest.fixture
def kv1(env: DevEnv) -> Iterator[str]:
    mount = unique("kv1")
    bao(env, "POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "1"}})
    yield mount
    bao(env, "DELETE", f"sys/mounts/{mount}")


@pytest.mark.parametrize("capabilities", ['"read", "list"', '"read"'])
def test_kv1_values_are_unversioned_and_versions_only_tell_existence(
    env: DevEnv, kv1: str, capabilities: str
) -> None:
    bao(env, "POST", f"{kv1}/team/db", {"password": "kv1-value", "user": "app"})
    bao(env, "POST", f"{kv1}/team/deeper/api", {"token": "kv1-other"})
    rules = policy(env, unique("kv1"), (f"{kv1}/team/*", capabilities))
    token = bao(env, "POST", "auth/token/create", {"policies": [rules], "ttl": "5m"})
    backend = VaultBackend(spec(env, token_auth(), path=kv1, version="v1"))
    material = LoginMaterial(secrets={"token": token["auth"]["client_token"].encode()})
    refs = [
        RemoteRef("team/db"),
        RemoteRef("team/deeper/api"),
        RemoteRef("team/missing"),
        RemoteRef("team/db", "2"),
    ]

    async def scenario() -> tuple[Any, Any]:
        client = backend.client(await backend.login(material), QUIET)
        try:
            await client.validate()
            return await client.fetch(refs), await client.versions(refs)
        finally:
            await client.close()

    results, versions = run(scenario())

    db = results[RemoteRef("team/db")]
    assert isinstance(db, RemoteValue)
    assert db.value == b'{"password":"kv1-value","user":"app"}'
    assert db.version == "unversioned"
    assert isinstance(results[RemoteRef("team/missing")], SecretNotFoundError)
    assert isinstance(results[RemoteRef("team/db", "2")], ProviderConfigError)
    assert versions == {
        RemoteRef("team/db"): "unversioned",
        RemoteRef("team/deeper/api"): "unversioned",
    }


def test_kv1_find_lists_the_mount(env: DevEnv, kv1: str) -> None:
    for key in ("team/db-a", "team/x/db-b", "team/cache"):
        bao(env, "POST", f"{kv1}/{key}", {"v": key})
    backend = VaultBackend(spec(env, token_auth(), path=kv1, version="v1"))

    async def scenario() -> list[str]:
        client = backend.client(await backend.login(root_material(env)), QUIET)
        try:
            return sorted(
                r.key for r in await client.find(FindQuery(path="team", name_regexp="db-"))
            )
        finally:
            await client.close()

    assert run(scenario()) == ["team/db-a", "team/x/db-b"]


def test_a_v2_store_on_a_kv1_mount_fails_validation(env: DevEnv, kv1: str) -> None:
    backend = VaultBackend(spec(env, token_auth(), path=kv1, version="v2"))

    async def scenario() -> None:
        client = backend.client(await backend.login(root_material(env)), QUIET)
        try:
            await client.validate()
        finally:
            await client.close()

    with pytest.raises(ProviderConfigError, match="KV v1"):
        run(scenario())


# --- Vault down -----------------------------------------------------------------------------


def test_an_unreachable_server_is_unavailable_for_every_call(env: DevEnv) -> None:
    closed = spec(env, token_auth(), server=f"http://127.0.0.1:{free_port()}")
    session = run(VaultBackend(spec(env, token_auth())).login(root_material(env)))
    calls: list[tuple[str, str]] = []
    refs = [RemoteRef(f"team/key-{i}") for i in range(40)]

    with pytest.raises(ProviderUnavailableError):
        run(VaultBackend(closed).login(root_material(env)))

    async def each_call() -> list[BaseException]:
        client = VaultBackend(closed).client(
            session, ObservingGate(lambda op, o: calls.append((op, o)))
        )
        raised: list[BaseException] = []
        try:
            for call in (
                lambda: client.fetch(refs),
                lambda: client.versions(refs),
                lambda: client.find(FindQuery(path="team")),
                client.validate,
            ):
                with pytest.raises(ProviderUnavailableError) as caught:
                    await call()
                raised.append(caught.value)
        finally:
            await client.close()
        return raised

    assert len(run(each_call())) == 4
    # Once Vault is known to be down, the rest of a batch is not attempted.
    assert sum(1 for op, _ in calls if op == "kv.read") <= 8
    assert {outcome for _, outcome in calls} == {"error"}


class _Answer(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status in its class attribute and a chatty error body."""

    status = 503
    body = json.dumps({"errors": ["server text that may echo a value: s3cr3t-echo"]}).encode()

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, ProviderUnavailableError),
        (500, ProviderUnavailableError),
        (502, ProviderUnavailableError),
        (503, ProviderUnavailableError),
        (400, ProviderConfigError),
        (418, ProviderError),
    ],
)
def test_http_failures_map_to_errors_without_the_servers_text(
    env: DevEnv, status: int, expected: type[ProviderError]
) -> None:
    # OpenBao cannot be made to throttle or fail on demand without disturbing
    # other tests, so a stand-in answers with the status Vault would send.
    handler = type("Answer", (_Answer,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    session = run(VaultBackend(spec(env, token_auth())).login(root_material(env)))
    stand_in = VaultBackend(
        spec(env, token_auth(), server=f"http://127.0.0.1:{server.server_address[1]}")
    )

    async def fetch() -> BaseException:
        client = stand_in.client(session, QUIET)
        try:
            results = await client.fetch([RemoteRef("team/db")])
        except ProviderError as exc:
            return exc
        finally:
            await client.close()
        result = results[RemoteRef("team/db")]
        assert isinstance(result, ProviderError)
        return result

    try:
        error = run(fetch())
    finally:
        server.shutdown()
        server.server_close()

    assert type(error) is expected
    assert f"HTTP {status}" in str(error) or status == 418
    assert "s3cr3t-echo" not in str(error)
    assert "s3cr3t-echo" not in "".join(traceback.format_exception(error))


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_bao() -> Iterator[tuple[str, str, bytes]]:
    """A second OpenBao dev server speaking HTTPS with its own CA: (address, root token, CA)."""
    run_dir = Path(tempfile.mkdtemp(prefix="vault-tls-"))
    procs = Processes(run_dir)
    port, token = free_port(), "root-" + uuid.uuid4().hex
    bao_bin = str(Path(sys.executable).parent / "bao")  # installed beside this interpreter
    started = procs.start(
        "openbao-tls",
        [
            bao_bin,
            "server",
            "-dev",
            "-dev-tls",
            f"-dev-tls-cert-dir={run_dir}",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-dev-root-token-id={token}",
            "-dev-no-store-token",
        ],
    )
    addr = f"https://127.0.0.1:{port}"
    try:
        ca_file = run_dir / "vault-ca.pem"
        procs.wait_ready(
            started,
            lambda: (
                ca_file.exists()
                and http_ok(
                    f"{addr}/v1/sys/health", context=ssl.create_default_context(cafile=str(ca_file))
                )
            ),
            timeout=60,
            what="healthy over TLS",
        )
        yield addr, token, ca_file.read_bytes()
    finally:
        procs.stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)


def files_in(folder: Path) -> list[tuple[bytes, int]]:
    """Each file's content and permission bits."""
    return [(p.read_bytes(), p.stat().st_mode & 0o777) for p in folder.iterdir()]


@pytest.mark.parametrize("source", ["caBundle", "caRef"])
def test_a_tls_server_is_trusted_through_the_given_ca_and_the_ca_file_is_removed(
    tls_bao: tuple[str, str, bytes], source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    addr, token, ca = tls_bao
    # A private temp dir, so the CA file can be watched without racing other processes.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fields: dict[str, Any] = {"server": addr, "auth": token_auth()}
    if source == "caBundle":
        fields["caBundle"] = base64.b64encode(ca).decode()
    backend = VaultBackend(VaultProvider.model_validate(fields))
    material = LoginMaterial(
        secrets={"token": token.encode()}, ca_pem=ca if source == "caRef" else None
    )

    async def scenario() -> list[tuple[bytes, int]]:
        session = await backend.login(material)
        assert files_in(tmp_path) == []  # the login's own file is gone already
        client = backend.client(session, QUIET)
        try:
            await client.validate()
            return files_in(tmp_path)
        finally:
            await client.close()

    in_use = run(scenario())

    assert in_use == [(ca, 0o600)]
    assert files_in(tmp_path) == []


def test_a_server_certificate_from_another_ca_is_a_configuration_error(
    env: DevEnv, tls_bao: tuple[str, str, bytes]
) -> None:
    addr, token, _ = tls_bao
    wrong_ca = base64.b64encode(env.api_ca_pem).decode()
    backend = VaultBackend(
        VaultProvider.model_validate({"server": addr, "caBundle": wrong_ca, "auth": token_auth()})
    )

    with pytest.raises(ProviderConfigError, match="TLS"):
        run(backend.login(LoginMaterial(secrets={"token": token.encode()})))


def test_a_ca_bundle_that_is_not_base64_pem_is_refused(env: DevEnv) -> None:
    with pytest.raises(ProviderConfigError, match="caBundle"):
        VaultBackend(spec(env, token_auth(), caBundle="not base64!"))
    with pytest.raises(ProviderConfigError, match="caBundle"):
        VaultBackend(spec(env, token_auth(), caBundle=base64.b64encode(b"hello").decode()))


# --- no value ever leaks ----------------------------------------------------------------------


def test_no_value_or_credential_appears_in_errors_or_reprs(
    env: DevEnv, reader: Reader, kv1: str
) -> None:
    secret_value = "s3cr3t-" + uuid.uuid4().hex
    key = reader.key("db")
    put_v2(env, key, {"password": secret_value})
    outside = unique("other") + "/db"
    put_v2(env, outside, {"password": secret_value})
    bao(env, "POST", f"{kv1}/db", {"password": secret_value})
    wrong_secret_id = "wrong-" + uuid.uuid4().hex
    revoked = bao(env, "POST", "auth/token/create", {"policies": ["default"], "ttl": "5m"})
    revoked_token = revoked["auth"]["client_token"]
    bao(env, "POST", "auth/token/revoke", {"token": revoked_token})
    approle = unique("approle")
    bao(env, "POST", f"sys/auth/{approle}", {"type": "approle"})
    bao(env, "POST", f"auth/{approle}/role/r", {"token_policies": ["default"]})
    role_id = bao(env, "GET", f"auth/{approle}/role/r/role-id")["data"]["role_id"]
    closed = f"http://127.0.0.1:{free_port()}"

    async def collect() -> list[object]:
        seen: list[object] = []
        session = await reader.backend.login(reader.material)
        seen.append(session)
        seen.append(session.credentials)
        client = reader.backend.client(session, QUIET)
        try:
            fetched = await client.fetch(
                [RemoteRef(key), RemoteRef(outside), RemoteRef(key, "x"), RemoteRef(key, "7")]
            )
            seen.extend(fetched.values())
        finally:
            await client.close()
        kv1_backend = VaultBackend(spec(env, token_auth(), path=kv1, version="v1"))
        kv1_client = kv1_backend.client(await kv1_backend.login(root_material(env)), QUIET)
        try:
            seen.extend((await kv1_client.fetch([RemoteRef("db"), RemoteRef("db", "1")])).values())
        finally:
            await kv1_client.close()
        failures: list[tuple[dict[str, Any], LoginMaterial, str]] = [
            (
                {
                    "appRole": {
                        "mountPath": approle,
                        "roleId": role_id,
                        "secretIdRef": {"name": "a", "key": "b"},
                    }
                },
                LoginMaterial(secrets={"secretId": wrong_secret_id.encode()}),
                env.vault_addr,
            ),
            (
                token_auth(),
                LoginMaterial(secrets={"token": revoked_token.encode()}),
                env.vault_addr,
            ),
            (token_auth(), LoginMaterial(secrets={"token": revoked_token.encode()}), closed),
        ]
        for auth, material, server in failures:
            try:
                await VaultBackend(spec(env, auth, server=server)).login(material)
            except ProviderError as exc:
                seen.append(exc)
            else:
                pytest.fail(f"login with {auth} should have failed")
        return seen

    seen = run(collect())

    errors = [o for o in seen if isinstance(o, ProviderError)]
    assert len(errors) == 7
    # The session tokens are credentials too.
    tokens = [getattr(getattr(o, "credentials", o), "token", None) for o in seen]
    forbidden = [secret_value, wrong_secret_id, revoked_token, env.vault_token]
    forbidden += [t for t in tokens if isinstance(t, str)]
    assert len(forbidden) > 4
    for obj in seen:
        texts = [repr(obj), str(obj)]
        if isinstance(obj, BaseException):
            texts.append("".join(traceback.format_exception(obj)))
            # The SDK's exception (whose text holds the server's answer) is not chained.
            assert obj.__cause__ is None
            assert obj.__suppress_context__ or obj.__context__ is None
        for text in texts:
            for needle in forbidden:
                assert needle not in text, f"{type(obj).__name__} shows a credential or value"


def test_a_version_scheduled_for_deletion_is_still_current(env: DevEnv, reader: Reader) -> None:
    # delete_version_after sets deletion_time ahead of time; until then it is live.
    key = reader.key("expiring")
    bao(env, "POST", f"secret/metadata/{key}", {"delete_version_after": "1h"})
    put_v2(env, key, {"password": "still-here"})

    async def scenario() -> tuple[Any, Any]:
        client = await reader.client()
        try:
            return await client.fetch([RemoteRef(key)]), await client.versions([RemoteRef(key)])
        finally:
            await client.close()

    results, versions = run(scenario())

    assert value_of(results[RemoteRef(key)]) == {"password": "still-here"}
    assert versions == {RemoteRef(key): "1"}
