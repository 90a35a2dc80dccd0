"""`secretsync convert` end to end: ESO manifests for a namespace's AWS (moto) and Vault
(OpenBao) stores are converted with the CLI, the result is admitted by the real
apiserver, and the operator writes the Secrets ESO would have written. And
`--from-cluster` reads ESO objects (stand-in CRDs) from the apiserver."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from harness import scenario, teams
from harness.awsproxy import AwsRecordingProxy
from harness.convertcli import convert
from harness.devenv import DevEnv
from harness.vaultsetup import bind_namespace, put

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("operator")]

ESO_CRDS = Path(__file__).parent / "fixtures" / "eso-crds.yaml"


def value(secret_values: set[bytes], label: str) -> str:
    text = f"{label}-{uuid.uuid4().hex}"
    secret_values.add(text.encode())
    return text


def eso_manifests(env: DevEnv, namespace: str) -> list[dict[str, Any]]:
    """What a team running External Secrets Operator would have in Git."""
    return [
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "SecretStore",
            "metadata": {"name": "aws", "namespace": namespace},
            "spec": {
                "provider": {
                    "aws": {
                        "service": "SecretsManager",
                        "region": "eu-west-1",
                        "role": teams.aws_role(namespace),
                        "auth": {"jwt": {"serviceAccountRef": {"name": "sync"}}},
                    }
                }
            },
        },
        {
            "apiVersion": "external-secrets.io/v1beta1",
            "kind": "SecretStore",
            "metadata": {"name": "vault", "namespace": namespace},
            "spec": {
                "provider": {
                    "vault": {
                        "server": env.vault_addr,
                        "path": "secret",
                        "version": "v2",
                        "auth": {
                            "kubernetes": {
                                "mountPath": "kubernetes",
                                "role": namespace,
                                # ESO asks for exactly these audiences; without any, its
                                # token would carry the apiserver's default audience, which
                                # the role (audience: vault) refuses.
                                "serviceAccountRef": {"name": "sync", "audiences": ["vault"]},
                            }
                        },
                    }
                }
            },
        },
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": "db", "namespace": namespace},
            "spec": {
                "secretStoreRef": {"name": "aws", "kind": "SecretStore"},
                "refreshInterval": "1h",
                "target": {"name": "db-credentials"},
                "data": [
                    {
                        "secretKey": "password",
                        "remoteRef": {"key": f"{namespace}/db", "property": "password"},
                    },
                    {"secretKey": "api-key", "remoteRef": {"key": f"{namespace}/api-key"}},
                ],
                "dataFrom": [{"extract": {"key": f"{namespace}/conn"}}],
            },
        },
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": "dsn", "namespace": namespace},
            "spec": {
                "secretStoreRef": {"name": "aws"},
                "target": {
                    "template": {
                        "type": "Opaque",
                        "metadata": {"labels": {"tier": "backend"}},
                        "data": {
                            "DSN": "postgres://{{ .username }}:{{ .password }}@db:5432/app",
                            "USER": "{{ .username | upper }}",
                        },
                    }
                },
                "dataFrom": [{"extract": {"key": f"{namespace}/db"}}],
            },
        },
        {
            "apiVersion": "external-secrets.io/v1beta1",
            "kind": "ExternalSecret",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {
                "secretStoreRef": {"name": "vault"},
                "refreshInterval": "10m",
                "target": {
                    "name": "app-config",
                    "template": {
                        "data": {
                            "token": '{{ index . "api_token" | b64enc }}',
                            "url": "https://{{ .host }}/?user={{ .user }}",
                        }
                    },
                },
                "data": [
                    {
                        # ESO tolerates the mount (and /data/) in the key; secretsync does not.
                        "secretKey": "api_token",
                        "remoteRef": {"key": f"secret/data/{namespace}/app", "property": "token"},
                    }
                ],
                "dataFrom": [{"extract": {"key": f"{namespace}/common"}}],
            },
        },
    ]


def test_converted_eso_manifests_are_admitted_and_sync_what_eso_would_write(
    env: DevEnv,
    api: Any,
    aws: AwsRecordingProxy,
    namespace: str,
    secret_values: set[bytes],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    bind_namespace(env, api, namespace)  # the `sync` ServiceAccount and its Vault role
    password, api_key = value(secret_values, "pw"), value(secret_values, "key")
    token, host = value(secret_values, "token"), value(secret_values, "host")
    sm = teams.secrets_manager(env)
    sm.create_secret(
        Name=f"{namespace}/db", SecretString=json.dumps({"username": "app", "password": password})
    )
    sm.create_secret(Name=f"{namespace}/api-key", SecretString=api_key)
    sm.create_secret(
        Name=f"{namespace}/conn", SecretString=json.dumps({"host": "db", "port": 5432})
    )
    put(env, f"{namespace}/app", {"token": token})
    put(env, f"{namespace}/common", {"host": host, "user": "svc"})

    source = tmp_path / "eso.yaml"
    source.write_text(yaml.safe_dump_all(eso_manifests(env, namespace)))
    report = tmp_path / "report.json"
    code, docs, err = convert(
        capsys, str(source), "--aws-endpoint", aws.url, "--report", str(report)
    )
    # From files, the role ESO's jwt auth exchanged the token for (the ServiceAccount's
    # eks.amazonaws.com/role-arn annotation) is unknown: that alone is lossy.
    assert code == 1, err
    code, docs, err = convert(
        capsys, str(source), "--aws-endpoint", aws.url, "--report", str(report), "--allow-lossy"
    )
    assert code == 0, err
    lossy = [
        (o["kind"], o["name"], f["path"])
        for o in json.loads(report.read_text())["objects"]
        for f in o["findings"]
        if f["severity"] == "lossy"
    ]
    assert lossy == [("SecretStore", "aws", "spec.provider.aws.auth.jwt")]
    assert [d["kind"] for d in docs] == ["SecretStore"] * 2 + ["SecretSync"] * 3
    scenario.apply(env, *docs)  # admission: the CRDs' schemas and CEL rules accept it

    scenario.wait_for_reason(api, namespace, "db", "Synced")
    assert scenario.secret_data(api, namespace, "db-credentials") == {
        "password": password.encode(),
        "api-key": api_key.encode(),
        "host": b"db",
        "port": b"5432",
    }
    scenario.wait_for_reason(api, namespace, "dsn", "Synced")
    # A template replaces the data (ESO's default mergePolicy Replace).
    assert scenario.secret_data(api, namespace, "dsn") == {
        "DSN": f"postgres://app:{password}@db:5432/app".encode(),
        "USER": b"APP",
    }
    assert scenario.secret(api, namespace, "dsn").metadata.labels["tier"] == "backend"
    scenario.wait_for_reason(api, namespace, "app", "Synced")
    assert scenario.secret_data(api, namespace, "app-config") == {
        "token": base64.b64encode(token.encode()),
        "url": f"https://{host}/?user=svc".encode(),
    }
    sync = scenario.get_sync(api, namespace, "app")
    assert sync["metadata"]["annotations"]["secretsync.io/converted-from"] == (
        "external-secrets.io/ExternalSecret"
    )
    for text in (err, report.read_text()):
        assert not any(v.decode() in text for v in secret_values)


@pytest.fixture
def eso_crds(env: DevEnv) -> Iterator[None]:
    env.kubectl("apply", "-f", str(ESO_CRDS))
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(ESO_CRDS.read_text()) if d]
    env.wait_established(*names)
    yield
    env.kubectl("delete", "-f", str(ESO_CRDS), "--wait=true", check=False)
    # kubectl keeps its discovery on disk: while it still lists ESO's SecretStore kinds, a
    # bare `secretstore` in a later test would mean ESO's. Refresh it.
    env.kubectl("api-resources", "-o", "name")


def test_from_cluster_reads_eso_objects_and_resolves_namespace_selectors(
    env: DevEnv,
    api: Any,
    eso_crds: None,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker = f"convert-{uuid.uuid4().hex[:6]}"
    core = kubernetes.client.CoreV1Api(api)
    core.patch_namespace(namespace, {"metadata": {"labels": {"eso-test": marker}}})
    # IRSA as ESO users set it up: the role on the ServiceAccount, none on the store.
    bind_namespace(env, api, namespace)
    annotation = {"eks.amazonaws.com/role-arn": teams.aws_role(namespace)}
    core.patch_namespaced_service_account(
        "sync", namespace, {"metadata": {"annotations": annotation}}
    )
    eso = eso_manifests(env, namespace)
    del eso[0]["spec"]["provider"]["aws"]["role"]
    eso.append(
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ClusterExternalSecret",
            "metadata": {"name": marker},
            "spec": {
                "externalSecretName": "shared",
                "namespaceSelectors": [{"matchLabels": {"eso-test": marker}}],
                "externalSecretSpec": {
                    "secretStoreRef": {"name": "vault"},
                    "dataFrom": [{"extract": {"key": f"{namespace}/common"}}],
                },
            },
        }
    )
    for doc in eso:
        doc["apiVersion"] = "external-secrets.io/v1"  # the stand-in CRDs serve v1 only
    env.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(eso))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KUBECONFIG", str(env.kubeconfig))
            patch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
            code, docs, err = convert(capsys, "--from-cluster", "--namespace", namespace)
    finally:
        env.kubectl("delete", "clusterexternalsecret", marker, "--wait=false", check=False)
    assert code == 0, err
    got = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert got == [
        ("SecretStore", "aws"),
        ("SecretStore", "vault"),
        ("SecretSync", "app"),
        ("SecretSync", "db"),
        ("SecretSync", "dsn"),
        ("SecretSync", "shared"),
    ]
    assert all(d["metadata"]["namespace"] == namespace for d in docs)
    aws_store = next(d for d in docs if d["metadata"]["name"] == "aws")
    assert aws_store["spec"]["provider"]["aws"]["role"] == teams.aws_role(namespace)
    assert "LOSSY" not in err
    shared = next(d for d in docs if d["metadata"]["name"] == "shared")
    assert shared["spec"]["dataFrom"] == [{"extract": {"key": f"{namespace}/common"}}]
    assert "cluster:externalsecrets.external-secrets.io/v1#" in err
    assert "resolved against the cluster's namespaces now" in err


def test_moving_from_eso_takes_over_its_secret_in_place_and_keeps_it_after_eso_goes(
    env: DevEnv,
    api: Any,
    aws: AwsRecordingProxy,
    eso_crds: None,
    namespace: str,
    secret_values: set[bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The cut-over docs/convert.md describes: ESO's ExternalSecret `db` wrote Secret
    `db-credentials` (owned by it); the converted SecretSync takes that Secret over with
    one patch (never deleting it), and deleting the ExternalSecret afterwards leaves it."""
    bind_namespace(env, api, namespace)
    password = value(secret_values, "pw")
    teams.secrets_manager(env).create_secret(
        Name=f"{namespace}/db", SecretString=json.dumps({"password": password})
    )
    external_secret = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": "db", "namespace": namespace},
        "spec": {
            "secretStoreRef": {"name": "aws"},
            "target": {"name": "db-credentials"},
            "data": [
                {
                    "secretKey": "password",
                    "remoteRef": {"key": f"{namespace}/db", "property": "password"},
                }
            ],
        },
    }
    env.kubectl("apply", "-f", "-", input_text=yaml.safe_dump(external_secret))
    owner: Any = kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
        "external-secrets.io", "v1", namespace, "externalsecrets", "db"
    )
    core: Any = kubernetes.client.CoreV1Api(api)
    # What ESO's controller had written (it does not run here): the Secret, owned by it.
    eso_written = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(
            name="db-credentials",
            labels={"reconcile.external-secrets.io/managed": "true"},
            owner_references=[
                kubernetes.client.V1OwnerReference(
                    api_version="external-secrets.io/v1",
                    kind="ExternalSecret",
                    name="db",
                    uid=owner["metadata"]["uid"],
                    controller=True,
                    block_owner_deletion=True,
                )
            ],
        ),
        string_data={"password": password},
    )
    core.create_namespaced_secret(namespace, eso_written)
    before = core.read_namespaced_secret("db-credentials", namespace).metadata.uid

    store = eso_manifests(env, namespace)[0]
    code, docs, err = convert(
        capsys, "-", "--aws-endpoint", aws.url, "--allow-lossy",
        stdin=yaml.safe_dump_all([store, external_secret]),
    )  # fmt: skip
    assert code == 0, err
    scenario.apply(env, *docs)
    sync = scenario.wait_for_reason(api, namespace, "db", "Synced")
    secret = core.read_namespaced_secret("db-credentials", namespace)
    assert secret.metadata.uid == before  # the same object: taken over, not recreated
    assert [(o.kind, o.name) for o in secret.metadata.owner_references] == [("SecretSync", "db")]
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "secretsync"
    assert scenario.secret_data(api, namespace, "db-credentials") == {"password": password.encode()}
    reasons = [e.reason for e in scenario.events_for(api, namespace, "db")]
    assert "Adopted" in reasons, reasons
    assert sync["status"]["conditions"][0]["status"] == "True"

    # ESO's object goes; the garbage collector must not take the Secret with it (it
    # deletes an owner's dependents within a second or two here).
    env.kubectl("delete", "externalsecret", "db", "-n", namespace, "--wait=true")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert core.read_namespaced_secret("db-credentials", namespace).metadata.uid == before
        time.sleep(0.5)
