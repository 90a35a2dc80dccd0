"""SOPS documents through the real operator: every fixture encrypted by the real `sops`
CLI (tools/sops/build.sh) for age, AWS KMS (moto, through the recording proxy) and Vault
transit (OpenBao); read from ConfigMaps of the SecretSync's namespace and from S3;
tampered documents refused with the last good Secret kept; a changed ConfigMap synced
at once by the watch, a changed S3 object by the change check."""

from __future__ import annotations

import base64
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


def test_age_documents_of_every_format_round_trip_byte_for_byte(
    env: DevEnv, api: Any, age_team: tuple[str, Any], secret_values: set[bytes]
) -> None:
    namespace, identity = age_team
    values = {k: _value() for k in ("yaml", "json", "json2", "env", "bin")}
    secret_values.update(v.encode() for v in values.values())
    plain = _documents(values)
    recipient = str(identity.to_public())
    encrypted = {
        name: sopscli.encrypt(doc, file_name=name, age_recipients=[recipient])
        for name, doc in plain.items()
    }
    for name, doc in encrypted.items():  # the CLI's own answer is the reference
        assert sopscli.decrypt(doc, file_name=name, age_identities=[str(identity)]) == plain[name]
    sopssetup.config_map(api, namespace, "docs", encrypted)
    scenario.apply(env, _age_store(namespace), _all_formats_sync(namespace, "app", "sops"))
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
    changed = time.monotonic()
    sopssetup.config_map(api, namespace, "docs", {"db.yaml": document(second)})
    _wait_data(api, namespace, "db", {"password": second.encode()}, timeout=20)
    assert time.monotonic() - changed < 20

    # Tampered: the encrypted value of another document put in place of this one's (a
    # valid ciphertext under the same data key would still fail: the MAC covers it).
    forged = _with_line_of(document(second), document(_value()), "password:")
    sopssetup.config_map(api, namespace, "docs", {"db.yaml": forged})
    obj = scenario.wait_for_reason(api, namespace, "db", "InvalidDocument", timeout=30)
    message = (scenario.ready(obj) or {})["message"]
    assert f"ConfigMap {namespace}/docs key db.yaml" in message
    assert "does not authenticate" in message  # another data key's ciphertext
    assert scenario.secret_data(api, namespace, "db") == {"password": second.encode()}


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


def test_a_document_for_keys_the_store_lacks_is_refused_with_what_it_needs(
    env: DevEnv, api: Any, age_team: tuple[str, Any]
) -> None:
    namespace, _ = age_team
    stranger = sopssetup.age_identity()
    doc = sopscli.encrypt(b"a: b\n", file_name="x.yaml", age_recipients=[str(stranger.to_public())])
    sopssetup.config_map(api, namespace, "docs", {"x.yaml": doc})
    scenario.apply(
        env,
        _age_store(namespace),
        sopssetup.sync(
            namespace, "x", "sops", {"dataFrom": [{"extract": {"key": "configmap/docs/x.yaml"}}]}
        ),
    )
    obj = scenario.wait_for_reason(api, namespace, "x", "InvalidDocument")
    cond = scenario.ready(obj) or {}
    assert f"ConfigMap {namespace}/docs key x.yaml" in cond["message"]
    assert "age" in cond["message"]
