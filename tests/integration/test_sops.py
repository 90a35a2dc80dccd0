"""SOPS documents through the real operator: every fixture encrypted by the real `sops`
CLI (tools/sops/build.sh) for age, AWS KMS (moto, through the recording proxy) and Vault
transit (OpenBao); read from ConfigMaps of the SecretSync's namespace and from S3;
tampered documents refused with the last good Secret kept; a changed ConfigMap synced
at once by the watch, a changed S3 object by the change check."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from harness import kube, scenario, sopscli, sopssetup
from harness import operator as op
from harness.awsproxy import AwsRecordingProxy
from harness.devenv import DevEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("sops_operator")]

FIXTURES = Path(__file__).resolve().parent.parent / "unit" / "fixtures" / "sops"


@pytest.fixture(scope="module")
def sops_operator(env: DevEnv, crds: None, operator_log: Path) -> Iterator[None]:
    """The operator, watching ConfigMaps labelled as SOPS documents (the chart's
    rbac.sopsDocuments)."""
    with op.running(env, operator_log, "--watch-sops-documents"):
        yield


def _value() -> str:
    return f"v-{uuid.uuid4().hex}"


def _documents(values: dict[str, str]) -> dict[str, bytes]:
    """One plaintext document per format, each holding the values (plus a non-text blob),
    written as `sops decrypt` prints them (JSON with tabs, YAML with four spaces), so that
    the whole decrypted document equals the file the team encrypted."""
    yaml_doc = (
        "# the database\n"
        "db:\n"
        f"    user: app\n"
        f"    password: {values['yaml']}\n"
        "replicas: 3\n"
        "debug: false\n"
    ).encode()
    json_doc = (
        json.dumps({"api_key": values["json"], "nested": {"token": values["json2"]}}, indent="\t")
        + "\n"
    ).encode()
    env_doc = f"API_TOKEN={values['env']}\nMODE=production\n".encode()
    blob = b"\x00\xffkey:" + values["bin"].encode() + bytes(range(256))
    return {"app.yaml": yaml_doc, "app.json": json_doc, "app.env": env_doc, "blob.bin": blob}


def _wait_data(
    api: Any, namespace: str, name: str, want: dict[str, bytes], timeout: float = 60
) -> None:
    kube.eventually(
        lambda: scenario.secret_data(api, namespace, name) == want,
        timeout=timeout,
        what=f"Secret {namespace}/{name} to hold the decrypted values",
    )


def _with_line_of(good: bytes, other: bytes, prefix: str) -> bytes:
    """`good` with its line starting with `prefix` taken from `other`: a well-formed
    ciphertext, under another data key, where the original was."""
    replacement = next(x for x in other.decode().splitlines() if x.startswith(prefix))
    lines = [replacement if x.startswith(prefix) else x for x in good.decode().splitlines()]
    return ("\n".join(lines) + "\n").encode()


def _all_formats_sync(namespace: str, name: str, store: str) -> dict[str, Any]:
    return sopssetup.sync(
        namespace,
        name,
        store,
        {
            "refreshInterval": "1h",
            "data": [
                {"secretKey": "app.yaml", "remoteRef": {"key": "configmap/docs/app.yaml"}},
                {"secretKey": "app.json", "remoteRef": {"key": "configmap/docs/app.json"}},
                {"secretKey": "app.env", "remoteRef": {"key": "configmap/docs/app.env"}},
                {"secretKey": "blob.bin", "remoteRef": {"key": "configmap/docs/blob.bin"}},
                {
                    "secretKey": "db-password",
                    "remoteRef": {"key": "configmap/docs/app.yaml", "property": "db.password"},
                },
                {
                    "secretKey": "token",
                    "remoteRef": {"key": "configmap/docs/app.json", "property": "nested.token"},
                },
            ],
            "dataFrom": [{"extract": {"key": "configmap/docs/app.env"}}],
        },
    )


def _expected(plain: dict[str, bytes], values: dict[str, str]) -> dict[str, bytes]:
    return {
        **{k: plain[k] for k in ("app.yaml", "app.json", "app.env", "blob.bin")},
        "db-password": values["yaml"].encode(),
        "token": values["json2"].encode(),
        "API_TOKEN": values["env"].encode(),
        "MODE": b"production",
    }


@pytest.fixture
def age_team(api: Any, namespace: str) -> tuple[str, Any]:
    identity = sopssetup.age_identity()
    sopssetup.age_key_secret(api, namespace, "sops-age", identity)
    return namespace, identity


def _age_store(namespace: str) -> dict[str, Any]:
    return sopssetup.store(
        namespace, "sops", {"age": {"secretRef": {"name": "sops-age", "key": "keys.txt"}}}
    )


@dataclasses.dataclass(frozen=True)
class KeyKind:
    """How a namespace's documents are encrypted (the sops CLI's arguments) and the store
    that opens them."""

    encrypt_args: dict[str, Any]
    store: dict[str, Any]
    decrypt_args: dict[str, Any]


def _key_kind(kind: str, env: DevEnv, api: Any, aws: AwsRecordingProxy, namespace: str) -> KeyKind:
    if kind == "age":
        identity = sopssetup.age_identity()
        sopssetup.age_key_secret(api, namespace, "sops-age", identity)
        return KeyKind(
            encrypt_args={"age_recipients": [str(identity.to_public())]},
            store=_age_store(namespace),
            decrypt_args={"age_identities": [str(identity)]},
        )
    if kind == "kms":
        scenario.service_account(api, namespace, "sync")
        cli_env = sopssetup.kms_cli_env(env)
        return KeyKind(
            encrypt_args={"kms_arns": [sopssetup.kms_key(env, namespace)], "env": cli_env},
            store=sopssetup.store(
                namespace, "sops", {"aws": sopssetup.aws_identity(namespace, aws.url)}
            ),
            decrypt_args={"env": cli_env},
        )
    uri = sopssetup.transit_key(env, api, namespace)
    cli_env = {"VAULT_TOKEN": env.vault_token, "VAULT_ADDR": env.vault_addr}
    return KeyKind(
        encrypt_args={"hc_vault_transit_uris": [uri], "env": cli_env},
        store=sopssetup.store(namespace, "sops", {"vault": sopssetup.vault_login(env, namespace)}),
        decrypt_args={"env": cli_env},
    )


@pytest.mark.parametrize("kind", ["age", "kms", "transit"])
def test_documents_of_every_format_round_trip_byte_for_byte(
    env: DevEnv,
    api: Any,
    aws: AwsRecordingProxy,
    namespace: str,
    secret_values: set[bytes],
    kind: str,
) -> None:
    """YAML, JSON, dotenv and binary, each encrypted by the sops CLI for the key kind:
    the whole document equals the file encrypted (and `sops decrypt`'s own output), and
    property and extract give its values."""
    keys = _key_kind(kind, env, api, aws, namespace)
    values = {k: _value() for k in ("yaml", "json", "json2", "env", "bin")}
    secret_values.update(v.encode() for v in values.values())
    plain = _documents(values)
    encrypted = {
        name: sopscli.encrypt(doc, file_name=name, **keys.encrypt_args)
        for name, doc in plain.items()
    }
    for name, doc in encrypted.items():  # the CLI's own answer is the reference
        assert sopscli.decrypt(doc, file_name=name, **keys.decrypt_args) == plain[name]
    sopssetup.config_map(api, namespace, "docs", encrypted)
    scenario.apply(env, keys.store, _all_formats_sync(namespace, "app", "sops"))
    scenario.wait_for_reason(api, namespace, "app", "Synced")
    assert scenario.secret_data(api, namespace, "app") == _expected(plain, values)


def test_a_changed_configmap_syncs_at_once_and_a_tampered_one_keeps_the_last_good_secret(
    env: DevEnv, api: Any, age_team: tuple[str, Any], secret_values: set[bytes]
) -> None:
    namespace, identity = age_team
    recipient = str(identity.to_public())
    first, second = _value(), _value()
    secret_values.update({first.encode(), second.encode()})

    def document(value: str) -> bytes:
        return sopscli.encrypt(
            f"password: {value}\n".encode(), file_name="db.yaml", age_recipients=[recipient]
        )

    sopssetup.config_map(api, namespace, "docs", {"db.yaml": document(first)})
    scenario.apply(
        env,
        _age_store(namespace),
        sopssetup.sync(
            namespace,
            "db",
            "sops",
            {"refreshInterval": "1h", "dataFrom": [{"extract": {"key": "configmap/docs/db.yaml"}}]},
        ),
    )
    _wait_data(api, namespace, "db", {"password": first.encode()})

    # A new document in Git, applied by Argo CD or Flux: synced by the ConfigMap's watch,
    # long before the hour's refresh.
    sopssetup.config_map(api, namespace, "docs", {"db.yaml": document(second)})
    _wait_data(api, namespace, "db", {"password": second.encode()}, timeout=20)

    # Tampered: the encrypted value of another document put in place of this one's (a
    # valid ciphertext under the same data key would still fail: the MAC covers it).
    forged = _with_line_of(document(second), document(_value()), "password:")
    sopssetup.config_map(api, namespace, "docs", {"db.yaml": forged})
    obj = scenario.wait_for_reason(api, namespace, "db", "InvalidDocument", timeout=30)
    message = (scenario.ready(obj) or {})["message"]
    assert f"ConfigMap {namespace}/docs key db.yaml" in message
    assert "does not authenticate" in message  # another data key's ciphertext
    assert scenario.secret_data(api, namespace, "db") == {"password": second.encode()}


def test_a_changed_document_secret_syncs_at_once(
    env: DevEnv, api: Any, age_team: tuple[str, Any], secret_values: set[bytes]
) -> None:
    namespace, identity = age_team
    recipient = str(identity.to_public())
    first, second = _value(), _value()
    secret_values.update({first.encode(), second.encode()})

    def document(value: str) -> bytes:
        return sopscli.encrypt(
            f"API_TOKEN={value}\n".encode(), file_name="api.env", age_recipients=[recipient]
        )

    sopssetup.document_secret(api, namespace, "docs", {"api.env": document(first)})
    scenario.apply(
        env,
        _age_store(namespace),  # no changeCheckInterval: only the watch can be quick
        sopssetup.sync(
            namespace,
            "api",
            "sops",
            {"refreshInterval": "1h", "dataFrom": [{"extract": {"key": "secret/docs/api.env"}}]},
        ),
    )
    _wait_data(api, namespace, "api", {"API_TOKEN": first.encode()})
    sopssetup.document_secret(api, namespace, "docs", {"api.env": document(second)})
    _wait_data(api, namespace, "api", {"API_TOKEN": second.encode()}, timeout=20)


def test_kms_documents_from_configmaps_and_s3_decrypt_as_the_namespaces_own_role(
    env: DevEnv, api: Any, aws: AwsRecordingProxy, namespace: str, secret_values: set[bytes]
) -> None:
    scenario.service_account(api, namespace, "sync")
    key_arn = sopssetup.kms_key(env, namespace)
    bucket = sopssetup.bucket(env, f"sops-{uuid.uuid4().hex[:12]}")
    in_map, in_s3 = _value(), _value()
    secret_values.update({in_map.encode(), in_s3.encode()})
    env_vars = sopssetup.kms_cli_env(env)
    map_doc = sopscli.encrypt(
        json.dumps({"password": in_map}).encode(),
        file_name="db.json",
        kms_arns=[key_arn],
        env=env_vars,
    )
    s3_doc = sopscli.encrypt(
        f"TOKEN={in_s3}\n".encode(), file_name="api.env", kms_arns=[key_arn], env=env_vars
    )
    sopssetup.config_map(api, namespace, "docs", {"db.json": map_doc})
    sopssetup.put_object(env, bucket, f"{namespace}/api.env", s3_doc)
    before = len(aws.snapshot())
    scenario.apply(
        env,
        sopssetup.store(namespace, "sops", {"aws": sopssetup.aws_identity(namespace, aws.url)}),
        sopssetup.sync(
            namespace,
            "app",
            "sops",
            {
                "data": [
                    {
                        "secretKey": "password",
                        "remoteRef": {"key": "configmap/docs/db.json", "property": "password"},
                    }
                ],
                "dataFrom": [{"extract": {"key": f"s3://{bucket}/{namespace}/api.env"}}],
            },
        ),
    )
    scenario.wait_for_reason(api, namespace, "app", "Synced")
    assert scenario.secret_data(api, namespace, "app") == {
        "password": in_map.encode(),
        "TOKEN": in_s3.encode(),
    }

    calls = aws.snapshot()[before:]
    roles = aws.roles_by_access_key()
    logins = [
        c
        for c in calls
        if c.action == "AssumeRoleWithWebIdentity"
        and urllib.parse.parse_qs(c.body.decode()).get("RoleArn", [""])[0]
        == sopssetup.role(namespace)
    ]
    assert logins, "the store never logged in as the namespace's role"
    for call in logins:
        assert call.web_identity_token
        payload = call.web_identity_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["sub"] == f"system:serviceaccount:{namespace}:sync"
        assert claims["aud"] == ["sts.amazonaws.com"]
    decrypts = [c for c in calls if c.action == "Decrypt"]
    reads = [c for c in calls if c.method == "GET" and f"/{bucket}/" in c.path]
    assert len(decrypts) == 2, "one KMS Decrypt per document"
    assert reads, "the S3 document was not read through the proxy"
    for call in decrypts + reads:
        assert roles.get(call.access_key or "") == sopssetup.role(namespace)


def test_a_changed_s3_document_is_found_by_the_change_check(
    env: DevEnv, api: Any, aws: AwsRecordingProxy, namespace: str, secret_values: set[bytes]
) -> None:
    scenario.service_account(api, namespace, "sync")
    key_arn = sopssetup.kms_key(env, namespace)
    bucket = sopssetup.bucket(env, f"sops-{uuid.uuid4().hex[:12]}")
    first, second = _value(), _value()
    secret_values.update({first.encode(), second.encode()})
    env_vars = sopssetup.kms_cli_env(env)

    def put(value: str) -> None:
        doc = sopscli.encrypt(
            f"TOKEN={value}\n".encode(), file_name="api.env", kms_arns=[key_arn], env=env_vars
        )
        sopssetup.put_object(env, bucket, "api.env", doc)

    put(first)
    store = sopssetup.store(namespace, "sops", {"aws": sopssetup.aws_identity(namespace, aws.url)})
    store["spec"]["changeCheckInterval"] = "2s"
    scenario.apply(
        env,
        store,
        sopssetup.sync(
            namespace,
            "api",
            "sops",
            {"refreshInterval": "1h", "dataFrom": [{"extract": {"key": f"s3://{bucket}/api.env"}}]},
        ),
    )
    _wait_data(api, namespace, "api", {"TOKEN": first.encode()})
    checked = time.monotonic()
    put(second)
    _wait_data(api, namespace, "api", {"TOKEN": second.encode()}, timeout=30)
    heads = aws.select(since=checked)
    assert any(c.method == "HEAD" for c in heads), "the change check did not HEAD the object"


def test_transit_documents_decrypt_with_the_namespaces_vault_role(
    env: DevEnv, api: Any, namespace: str, secret_values: set[bytes]
) -> None:
    uri = sopssetup.transit_key(env, api, namespace)
    value = _value()
    secret_values.add(value.encode())
    doc = sopscli.encrypt(
        yaml.safe_dump({"db": {"password": value}}).encode(),
        file_name="db.yaml",
        hc_vault_transit_uris=[uri],
        env={"VAULT_TOKEN": env.vault_token, "VAULT_ADDR": env.vault_addr},
    )
    sopssetup.config_map(api, namespace, "docs", {"db.yaml": doc})
    scenario.apply(
        env,
        sopssetup.store(namespace, "sops", {"vault": sopssetup.vault_login(env, namespace)}),
        sopssetup.sync(
            namespace,
            "db",
            "sops",
            {
                "data": [
                    {
                        "secretKey": "pw",
                        "remoteRef": {"key": "configmap/docs/db.yaml", "property": "db.password"},
                    }
                ]
            },
        ),
    )
    scenario.wait_for_reason(api, namespace, "db", "Synced")
    assert scenario.secret_data(api, namespace, "db") == {"pw": value.encode()}

    # Another namespace's role cannot decrypt with this namespace's key: least privilege.
    other = f"{namespace}-b"
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=other))
    )
    try:
        sopssetup.transit_key(env, api, other)
        sopssetup.config_map(api, other, "docs", {"db.yaml": doc})  # a copy of the document
        scenario.apply(
            env,
            sopssetup.store(other, "sops", {"vault": sopssetup.vault_login(env, other)}),
            sopssetup.sync(
                other,
                "db",
                "sops",
                {
                    "data": [
                        {
                            "secretKey": "pw",
                            "remoteRef": {
                                "key": "configmap/docs/db.yaml",
                                "property": "db.password",
                            },
                        }
                    ]
                },
            ),
        )
        scenario.wait_for_reason(api, other, "db", "AccessDenied")
        assert scenario.secret_data(api, other, "db") is None
    finally:
        core.delete_namespace(other)


def test_a_document_for_other_keys_is_refused_with_what_it_is_encrypted_for(
    env: DevEnv, api: Any, age_team: tuple[str, Any]
) -> None:
    namespace, ours = age_team
    stranger = sopssetup.age_identity()
    other_age = sopscli.encrypt(
        b"a: b\n", file_name="x.yaml", age_recipients=[str(stranger.to_public())]
    )
    kms_only = sopscli.encrypt(
        b"a: b\n",
        file_name="y.yaml",
        kms_arns=[sopssetup.kms_key(env, namespace)],
        env=sopssetup.kms_cli_env(env),
    )
    sopssetup.config_map(api, namespace, "docs", {"x.yaml": other_age, "y.yaml": kms_only})
    scenario.apply(
        env,
        _age_store(namespace),
        *(
            sopssetup.sync(
                namespace,
                name,
                "sops",
                {"dataFrom": [{"extract": {"key": f"configmap/docs/{key}"}}]},
            )
            for name, key in (("other-age", "x.yaml"), ("kms-only", "y.yaml"))
        ),
    )
    x = scenario.ready(scenario.wait_for_reason(api, namespace, "other-age", "InvalidDocument"))
    x = x or {}
    assert f"ConfigMap {namespace}/docs key x.yaml" in x["message"]
    # Recipients are public keys: naming both tells the user which key file is missing.
    assert str(stranger.to_public()) in x["message"]
    assert str(ours.to_public()) in x["message"]
    y = scenario.ready(scenario.wait_for_reason(api, namespace, "kms-only", "InvalidDocument"))
    y = y or {}
    assert f"ConfigMap {namespace}/docs key y.yaml is encrypted for AWS KMS" in y["message"]
    assert "the store has no key of those kinds (it has age)" in y["message"]
    assert scenario.secret_data(api, namespace, "other-age") is None
    assert scenario.secret_data(api, namespace, "kms-only") is None


def test_a_cluster_store_gives_each_namespace_its_own_key_and_documents(
    env: DevEnv, api: Any, age_team: tuple[str, Any], secret_values: set[bytes]
) -> None:
    """A ClusterSecretStore whose age key resolves in each SecretSync's namespace: each
    namespace opens its own documents with its own key, and never another's."""
    first, first_key = age_team
    second = f"{first}-b"
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=second))
    )
    store_name = f"sops-{first}"
    try:
        second_key = sopssetup.age_identity()
        sopssetup.age_key_secret(api, second, "sops-age", second_key)
        values = {first: _value(), second: _value()}
        secret_values.update(v.encode() for v in values.values())
        for ns, key in ((first, first_key), (second, second_key)):
            doc = sopscli.encrypt(
                f"TOKEN={values[ns]}\n".encode(),
                file_name="api.env",
                age_recipients=[str(key.to_public())],
            )
            sopssetup.config_map(api, ns, "docs", {"api.env": doc})
        # The second namespace also holds a copy of the first's document.
        copied = (core.read_namespaced_config_map("docs", first).data or {})["api.env"]
        sopssetup.config_map(api, second, "docs", {"api.env": doc, "stolen.env": copied.encode()})
        store = sopssetup.store(
            "", store_name, {"age": {"secretRef": {"name": "sops-age", "key": "keys.txt"}}}
        )
        store["kind"] = "ClusterSecretStore"
        del store["metadata"]["namespace"]
        ref = {"kind": "ClusterSecretStore", "name": store_name}
        docs = [
            sopssetup.sync(
                ns,
                "api",
                store_name,
                {"dataFrom": [{"extract": {"key": "configmap/docs/api.env"}}]},
            )
            for ns in (first, second)
        ]
        stolen = sopssetup.sync(
            second,
            "stolen",
            store_name,
            {"dataFrom": [{"extract": {"key": "configmap/docs/stolen.env"}}]},
        )
        for doc_ in (*docs, stolen):
            doc_["spec"]["storeRef"] = ref
        scenario.apply(env, store, *docs, stolen)
        for ns in (first, second):
            _wait_data(api, ns, "api", {"TOKEN": values[ns].encode()})
        scenario.wait_for_reason(api, second, "stolen", "InvalidDocument")
        assert scenario.secret_data(api, second, "stolen") is None
    finally:
        env.kubectl("delete", scenario.CLUSTER_SECRET_STORES, store_name, "--ignore-not-found")
        core.delete_namespace(second)
