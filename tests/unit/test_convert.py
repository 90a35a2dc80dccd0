"""`secretsync convert`: ESO manifests (tests/unit/fixtures/eso/) become secretsync
manifests the CRDs accept, and whatever does not convert faithfully is reported by
object and field path, with exit codes 0, 1 and 2."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.convertcli import convert as run
from secretsync.convert import manifests, read, stores, templates
from secretsync.models import store as store_models
from secretsync.models import sync as sync_models

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "eso"
CRDS = {
    "SecretSync": "secretsync.io_secretsyncs.yaml",
    "SecretStore": "secretsync.io_secretstores.yaml",
    "ClusterSecretStore": "secretsync.io_clustersecretstores.yaml",
}


def by_name(docs: list[dict[str, Any]], kind: str, name: str, ns: str | None = None) -> Any:
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and d["metadata"]["name"] == name
        and d["metadata"].get("namespace") == ns
    ]
    assert len(found) == 1, f"{kind} {ns}/{name}: {len(found)} found"
    return found[0]


def schema_errors(value: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
    """A small structural check against the CRD's OpenAPI schema: no field it would prune,
    types, enums, required fields, maxLength/maxItems (CEL rules are the integration
    tests' job, on a real apiserver)."""
    errors: list[str] = []
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{path}.{key}: required")
        for key, val in value.items():
            if props is not None and key in props:
                errors += schema_errors(val, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                errors += schema_errors(val, extra, f"{path}.{key}")
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{path}.{key}: unknown field")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        if len(value) > schema.get("maxItems", 10**9):
            errors.append(f"{path}: too many items")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{path}[{i}]")
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{path}: not a string"]
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{path}: {value!r} not in {schema['enum']}")
        if len(value) > schema.get("maxLength", 10**9):
            errors.append(f"{path}: too long")
    elif kind == "boolean" and not isinstance(value, bool):
        errors.append(f"{path}: not a boolean")
    return errors


def assert_admissible(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        assert doc["apiVersion"] == "secretsync.io/v1alpha1"
        crd = yaml.safe_load((REPO / "crds" / CRDS[doc["kind"]]).read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert schema_errors(doc, schema) == [], doc["metadata"]
        if doc["kind"] == "SecretSync":
            spec = sync_models.parse_spec(doc["spec"])
            assert spec.refresh_seconds >= 0
        else:
            store_models.StoreSpec.model_validate(doc["spec"])


# --- lossless input -------------------------------------------------------------------


@pytest.fixture
def converted(capsys: pytest.CaptureFixture[str]) -> tuple[list[dict[str, Any]], str]:
    code, docs, err = run(capsys, str(FIXTURES / "lossless"))
    assert code == 0, err
    return docs, err


def test_every_supported_field_converts_without_loss_into_admissible_manifests(
    converted: tuple[list[dict[str, Any]], str],
) -> None:
    docs, err = converted
    assert_admissible(docs)
    assert "0 not converted" in err
    assert "LOSSY" not in err
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ClusterSecretStore"] * 3 + ["SecretStore"] * 3 + ["SecretSync"] * 6


def test_aws_stores_keep_service_region_role_chain_and_identity(
    converted: tuple[list[dict[str, Any]], str],
) -> None:
    docs, _ = converted
    sm = by_name(docs, "SecretStore", "aws-sm", "team-a")
    assert sm["metadata"]["annotations"] == {
        "secretsync.io/converted-from": "external-secrets.io/SecretStore"
    }
    assert sm["metadata"]["labels"] == {"team": "a"}
    # ESO: additionalRoles, then role; secretsync: role, then additionalRoles.
    assert sm["spec"]["provider"]["aws"] == {
        "service": "SecretsManager",
        "region": "eu-west-1",
        "role": "arn:aws:iam::123456789012:role/team-a-hop",
        "additionalRoles": ["arn:aws:iam::123456789012:role/team-a-reader"],
        "auth": {
            "secretRef": {
                "accessKeyId": {"name": "aws-keys", "key": "id"},
                "secretAccessKey": {"name": "aws-keys", "key": "secret"},
            }
        },
    }
    ssm = by_name(docs, "SecretStore", "aws-ssm", "team-a")
    assert ssm["spec"]["provider"]["aws"]["auth"] == {
        "secretRef": {
            "accessKeyId": {"name": "aws-keys", "key": "id"},
            "secretAccessKey": {"name": "aws-keys", "key": "secret"},  # own namespace: dropped
            "sessionToken": {"name": "aws-keys", "key": "token"},
        }
    }


def test_vault_stores_keep_mount_version_namespace_ca_and_each_auth_method(
    converted: tuple[list[dict[str, Any]], str],
) -> None:
    docs, _ = converted
    vault = by_name(docs, "SecretStore", "vault", "team-b")["spec"]["provider"]["vault"]
    assert vault == {
        "server": "https://vault.example:8200",
        "path": "secret",  # ESO's optional /data suffix removed
        "version": "v2",
        "namespace": "tenants/b",
        "caRef": {"kind": "ConfigMap", "name": "vault-ca", "key": "ca.crt"},
        "auth": {
            "kubernetes": {
                "mountPath": "k8s",
                "role": "team-b",
                "serviceAccount": {"name": "sync", "audiences": ["vault"]},
            }
        },
    }
    shared = by_name(docs, "ClusterSecretStore", "vault-shared")["spec"]
    assert shared["conditions"] == [
        {"namespaces": ["team-b", "team-c"]},
        {"namespaceSelector": {"matchLabels": {"vault": "shared"}}},
    ]
    assert shared["provider"]["vault"]["version"] == "v1"
    assert shared["provider"]["vault"]["caBundle"].startswith("LS0t")
    assert shared["provider"]["vault"]["auth"] == {
        "appRole": {
            "mountPath": "approle-shared",
            "roleId": "5f0c0e7a-role",
            "secretIdRef": {"name": "approle", "key": "secret-id", "namespace": "ops"},
        }
    }
    jwt = by_name(docs, "ClusterSecretStore", "vault-jwt")["spec"]["provider"]["vault"]["auth"]
    assert jwt == {
        "jwt": {
            "mountPath": "jwt-k8s",
            "role": "reader",
            "serviceAccount": {"name": "sync", "audiences": ["bao"]},
        }
    }
    token = by_name(docs, "ClusterSecretStore", "vault-token")["spec"]["provider"]["vault"]
    assert token["auth"] == {
        "token": {"secretRef": {"name": "bao-token", "key": "token", "namespace": "ops"}}
    }


def test_external_secret_target_data_data_from_and_template_convert(
    converted: tuple[list[dict[str, Any]], str],
) -> None:
    docs, err = converted
    db = by_name(docs, "SecretSync", "db", "team-a")
    assert db["metadata"]["labels"] == {"app": "api"}
    assert db["metadata"]["annotations"] == {
        "owner": "platform",
        "secretsync.io/converted-from": "external-secrets.io/ExternalSecret",
        # It takes over the Secret the ExternalSecret wrote, in place (engine/writer.py).
        "secretsync.io/adopt": "external-secrets.io/ExternalSecret",
    }
    spec = db["spec"]
    assert spec["storeRef"] == {"name": "aws-sm", "kind": "SecretStore"}
    assert spec["refreshInterval"] == "15m"
    assert spec["target"] == {
        "name": "db-credentials",
        "creationPolicy": "Orphan",
        "deletionPolicy": "Delete",
        "immutable": True,
        "type": "kubernetes.io/basic-auth",
        "labels": {"tier": "backend"},
        "annotations": {"rotated-by": "eso"},
        "template": {
            "data": {
                "username": "{{ user }}",
                "password": "{{ password | trim }}",
                "dsn": "postgres://{{ user }}:{{ password }}@db:5432/app?sslmode="
                '{{ mode | default("require", true) | lower }}',
                "token": "{{ api_token | b64enc }}",
            }
        },
    }
    assert spec["data"] == [
        {"secretKey": "user", "remoteRef": {"key": "team-a/db", "property": "username"}},
        {
            "secretKey": "password",
            "remoteRef": {
                "key": "team-a/db",
                "property": "password",
                "version": "01234567-89ab-cdef-0123-456789abcdef",  # ESO's uuid/ prefix
            },
        },
        {
            "secretKey": "mode",
            "remoteRef": {"key": "team-a/db", "property": "mode", "version": "AWSPREVIOUS"},
        },
    ]
    assert spec["dataFrom"] == [
        {"extract": {"key": "team-a/api", "property": "tokens"}},
        {"find": {"path": "team-a/", "name": {"regexp": "^feature-"}, "tags": {"env": "prod"}}},
    ]
    assert "note  spec.data[1].remoteRef.version: the 'uuid/' prefix is removed" in err
    flags = by_name(docs, "SecretSync", "flags", "team-a")["spec"]
    assert flags["refreshInterval"] == "0"
    assert flags["target"] == {"creationPolicy": "Merge"}
    assert flags["storeRef"] == {"name": "aws-ssm", "kind": "SecretStore"}


def test_v1beta1_vault_keys_lose_the_mount_eso_tolerated(
    converted: tuple[list[dict[str, Any]], str],
) -> None:
    docs, _ = converted
    spec = by_name(docs, "SecretSync", "app", "team-b")["spec"]
    assert [d["remoteRef"]["key"] for d in spec["data"]] == ["team-b/app", "team-b/app"]
    assert spec["data"][0]["remoteRef"]["version"] == "2"
    assert spec["dataFrom"] == [{"extract": {"key": "team-b/common"}}]
    assert spec["refreshInterval"] == "1h0m0s"


def test_list_input_is_opened_and_other_kinds_are_passed_over_with_a_note(
    converted: tuple[list[dict[str, Any]], str],
) -> None:
    docs, err = converted
    by_name(docs, "SecretSync", "from-list", "team-b")
    assert "list.json#0.items[1]" in err
    assert "passed over: v1 ConfigMap is not an External Secrets Operator object" in err
    assert "1 other documents passed over" in err


def test_cluster_external_secret_becomes_one_secretsync_per_listed_namespace(
    converted: tuple[list[dict[str, Any]], str],
) -> None:
    docs, _ = converted
    for ns in ("team-b", "team-c"):
        sync = by_name(docs, "SecretSync", "db", ns)
        assert sync["metadata"]["labels"] == {"shared": "yes"}
        assert sync["metadata"]["annotations"] == {
            "secretsync.io/converted-from": "external-secrets.io/ClusterExternalSecret",
            "secretsync.io/adopt": "external-secrets.io/ExternalSecret",
        }
        # ESO gives the generated ExternalSecrets these labels, and copies them on.
        assert sync["spec"]["target"] == {"name": "shared-db", "labels": {"shared": "yes"}}


def test_cluster_external_secret_selectors_resolve_against_namespace_labels() -> None:
    docs = read.parse((FIXTURES / "lossy" / "lossy.yaml").read_text(), name="lossy.yaml")
    ces = [d for d in docs if d.kind == "ClusterExternalSecret"]
    result = manifests.convert(
        ces, namespace_labels={"a": {"team": "true"}, "b": {}, "c": {"team": "true"}}
    )
    assert [m["metadata"]["namespace"] for m in result.manifests] == ["a", "c"]
    assert not result.report.lossy


def test_multi_document_stdin_and_output_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = (FIXTURES / "lossless" / "aws-v1.yaml").read_text()
    out = tmp_path / "out.yaml"
    code, docs, _ = run(capsys, "-", "-o", str(out), stdin=text)
    assert (code, docs) == (0, [])
    written = list(yaml.safe_load_all(out.read_text()))
    assert [d["metadata"]["name"] for d in written] == ["aws-sm", "aws-ssm", "db", "flags"]


# --- lossy input ----------------------------------------------------------------------

LOSSY_CASES = [
    ("SecretStore team-x/gcp-store", "spec.provider.gcpsm", True),
    ("SecretStore team-x/aws-ambient", "spec.provider.aws.auth", True),
    ("SecretStore team-x/aws-irsa-no-role", "spec.provider.aws.role", True),
    ("SecretStore team-x/aws-session-tags", "spec.provider.aws.auth.jwt", False),
    ("SecretStore team-x/aws-session-tags", "spec.provider.aws.externalID", False),
    ("SecretStore team-x/aws-session-tags", "spec.provider.aws.sessionTags", False),
    ("SecretStore team-x/aws-session-tags", "spec.provider.aws.prefix", False),
    ("SecretStore team-x/vault-ldap", "spec.provider.vault.auth.ldap", True),
    ("SecretStore team-x/vault-no-path", "spec.provider.vault.path", True),
    (
        "SecretStore team-x/vault-foreign-secret",
        "spec.provider.vault.auth.tokenSecretRef.namespace",
        True,
    ),
    ("ClusterSecretStore regex-only", "spec.conditions[0].namespaceRegexes", True),
    ("ExternalSecret team-x/decoding", "spec.data[0].remoteRef.decodingStrategy", False),
    ("ExternalSecret team-x/decoding", "spec.data[0].remoteRef.conversionStrategy", False),
    ("ExternalSecret team-x/decoding", "spec.data[0].remoteRef.metadataPolicy", False),
    ("ExternalSecret team-x/rewrite-and-generator", "spec.dataFrom[0].rewrite", False),
    ("ExternalSecret team-x/rewrite-and-generator", "spec.dataFrom[1].sourceRef", False),
    ("ExternalSecret team-x/creation-none", "spec.target.creationPolicy", True),
    ("ExternalSecret team-x/deletion-merge", "spec.refreshPolicy", False),
    ("ExternalSecret team-x/deletion-merge", "spec.target.deletionPolicy", False),
    ("ExternalSecret team-x/deletion-merge", "spec.target.template.templateFrom", False),
    ("ExternalSecret team-x/deletion-merge", "spec.target.template.mergePolicy", False),
    ("ExternalSecret team-x/deletion-merge", "spec.target.template.data.conf", False),
    ("ExternalSecret team-x/deletion-merge", "spec.target.template.data.quoted", False),
    ("ExternalSecret team-x/deletion-merge", "spec.data[2].sourceRef", False),
    ("ExternalSecret team-x/engine-v1", "spec.target.template.data.x", False),
    ("ClusterExternalSecret by-selector", "spec.namespaceSelectors", True),
    ("PushSecret team-x/push", "kind", True),
    ("ExternalSecret team-x/ancient", "apiVersion", True),
]


@pytest.fixture
def lossy_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> tuple[int, list[dict[str, Any]], str, dict[str, Any]]:
    report = tmp_path / "report.json"
    code, docs, err = run(capsys, str(FIXTURES / "lossy"), "--allow-lossy", "--report", str(report))
    return code, docs, err, json.loads(report.read_text())


@pytest.mark.parametrize(("title", "path", "dropped"), LOSSY_CASES)
def test_each_lossy_case_is_reported_by_object_and_field_path(
    lossy_run: tuple[int, list[dict[str, Any]], str, dict[str, Any]],
    title: str,
    path: str,
    dropped: bool,
) -> None:
    _, _, err, report = lossy_run
    assert f"LOSSY {path}: " in err.split(f"\n{title} (", 1)[1].split("\n\n")[0].split(":\n")[1]
    (obj,) = [
        o
        for o in report["objects"]
        if f"{o['kind']} {o['namespace'] + '/' if o['namespace'] else ''}{o['name']}" == title
    ]
    assert obj["lossy"]
    assert obj["converted"] is not dropped
    assert any(f["path"] == path and f["severity"] == "lossy" for f in obj["findings"])


def test_allow_lossy_still_writes_admissible_output_and_exits_0(
    lossy_run: tuple[int, list[dict[str, Any]], str, dict[str, Any]],
) -> None:
    code, docs, _, report = lossy_run
    assert code == 0
    assert report["lossy"] is True
    assert_admissible(docs)
    names = sorted(d["metadata"]["name"] for d in docs)
    assert names == ["aws-session-tags", "decoding", "deletion-merge", "engine-v1",
                     "rewrite-and-generator"]  # fmt: skip
    merge = by_name(docs, "SecretSync", "deletion-merge", "team-x")
    # An untranslated template fails closed at render instead of writing something else.
    assert merge["spec"]["target"]["template"]["data"] == {
        "conf": "{{ untranslated_go_template }}",
        "quoted": "{{ untranslated_go_template }}",
        "ok": "{{ a | upper }}",
    }
    assert merge["spec"]["refreshInterval"] == "0"
    assert "deletionPolicy" not in merge["spec"]["target"]
    # Two items for key a: ESO keeps the last, and so does the conversion.
    assert merge["spec"]["data"] == [{"secretKey": "a", "remoteRef": {"key": "b"}}]
    lossy = merge["metadata"]["annotations"]["secretsync.io/convert-lossy"]
    assert "spec.target.template.data.conf" in lossy


def test_lossy_input_exits_1_and_writes_nothing_without_allow_lossy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "out.yaml"
    code, docs, err = run(capsys, str(FIXTURES / "lossy"), "-o", str(out))
    assert (code, docs) == (1, [])
    assert not out.exists()
    assert "nothing written" in err
    assert "--allow-lossy" in err


def test_report_never_quotes_template_text_or_tag_values(
    lossy_run: tuple[int, list[dict[str, Any]], str, dict[str, Any]],
) -> None:
    _, _, err, report = lossy_run
    for text in (err, json.dumps(report)):
        assert "$k" not in text
        assert "APP_" not in text
        assert "abc" not in text  # externalID


# --- unreadable input -----------------------------------------------------------------


def test_unreadable_yaml_exits_2_naming_the_file_and_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, docs, err = run(capsys, str(FIXTURES / "broken"))
    assert (code, docs) == (2, [])
    assert "broken/bad.yaml: document 1" in err
    assert "not valid YAML" in err


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["/nonexistent/eso.yaml"], None, "/nonexistent/eso.yaml: no such file or directory"),
        (["-"], "- just\n- a list\n", "-#0: not a Kubernetes object"),
        ([], None, "give PATH arguments"),
        (["--namespace", "a", "x.yaml"], None, "--namespace applies to --from-cluster only"),
    ],
)
def test_bad_input_or_arguments_exit_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str | None, message: str
) -> None:
    code, _, err = run(capsys, *argv, stdin=stdin)
    assert code == 2
    assert message in err


# --- templates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("go", "jinja"),
    [
        ("{{ .password }}", "{{ password }}"),
        ("{{.a}}-{{ .b }}", "{{ a }}-{{ b }}"),
        ('{{ index . "api_key" }}', "{{ api_key }}"),
        ("{{ upper .a }}", "{{ a | upper }}"),
        ("{{ .a | lower | trim }}", "{{ a | lower | trim }}"),
        ("{{ .a | b64enc }}{{ .b | b64dec }}", "{{ a | b64enc }}{{ b | b64dec }}"),
        ("{{ .a | toString }}", "{{ a | string }}"),
        ("{{ (.cfg | fromJson).host }}", '{{ (cfg | fromjson)["host"] }}'),
        ('{{ replace "-" "_" .a }}', '{{ a | replace("-", "_") }}'),
        ('{{ .a | default "x" }}', '{{ a | default("x", true) }}'),
        ("{{- .a -}}", "{{- a -}}"),
        ("{{/* a comment */}}x", "x"),
        ("literal {% not a block %}", 'literal {{ "{%" }} not a block %}'),
        ('{{ "}}" }}', '{{ "}}" }}'),
    ],
)
def test_go_templates_translate_mechanically(go: str, jinja: str) -> None:
    assert templates.translate(go).text == jinja


@pytest.mark.parametrize(
    ("go", "problem"),
    [
        ('{{ index . "api-key" }}', "not a Jinja name"),
        ("{{ if .a }}x{{ end }}", "'if'"),
        ("{{ range .a }}{{ end }}", "'range'"),
        ("{{ $x := .a }}", "variables"),
        ("{{ .Values.a }}", "field of a value"),
        ("{{ . }}", "whole context"),
        ("{{ .a | sha256sum }}", "'sha256sum'"),
        ("{{ .a | quote }}", "'quote'"),
        ("{{ .a | title }}", "'title'"),
        ("{{ .in }}", "keyword"),
        ("{{ .a ", "unclosed"),
    ],
)
def test_go_templates_without_an_exact_equivalent_are_refused(go: str, problem: str) -> None:
    result = templates.translate(go)
    assert result.text is None
    assert any(problem in p for p in result.problems), result.problems


def test_translated_templates_render_as_hand_written_go_expectations() -> None:
    """The expected output is written by hand from Go template and sprig semantics (upper,
    b64enc, default replacing an empty value), not recorded from a Go run."""
    from secretsync.engine import render  # the engine is not convert's layer; tests may

    source = 'u={{ .user | upper }} p={{ index . "pw" | b64enc }} m={{ .mode | default "on" }}'
    jinja = templates.translate(source).text
    assert jinja is not None
    out = render.render({"k": jinja}, {"user": b"app", "pw": b"s3cret", "mode": b""})
    assert out == {"k": b"u=APP p=czNjcmV0 m=on"}


# --- review fixes: each pins one ESO behaviour --------------------------------------


def convert_text(text: str, **kwargs: Any) -> manifests.Result:
    return manifests.convert(read.parse(text, name="t.yaml"), **kwargs)


def findings(result: manifests.Result, title: str) -> dict[str, tuple[str, str]]:
    """path -> (severity, reason) of one object's findings."""
    (obj,) = [o for o in result.report if o.title == title]
    return {f.path: (f.severity, f.reason) for f in obj.findings}


def one(result: manifests.Result, kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in result.manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


VAULT_STORE = """
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: vault, namespace: a}
spec:
  provider:
    vault:
      server: https://vault.example
      path: secret
      auth: {AUTH}
"""


def test_vault_kubernetes_auth_without_audiences_is_lossy_and_says_how_to_fix_it() -> None:
    auth = "{kubernetes: {role: a, serviceAccountRef: {name: sync}}}"
    result = convert_text(VAULT_STORE.replace("{AUTH}", auth))
    path = "spec.provider.vault.auth.kubernetes.serviceAccountRef.audiences"
    severity, reason = findings(result, "SecretStore a/vault")[path]
    assert severity == "lossy"
    assert "`audience: vault` on the Vault role" in reason
    assert "serviceAccount.audiences" in reason
    sa = one(result, "SecretStore", "vault")["spec"]["provider"]["vault"]["auth"]["kubernetes"]
    assert sa["serviceAccount"] == {"name": "sync"}


def test_vault_kubernetes_auth_keeps_the_audiences_eso_names_exactly() -> None:
    auth = "{kubernetes: {role: a, serviceAccountRef: {name: sync, audiences: [x, y, x]}}}"
    result = convert_text(VAULT_STORE.replace("{AUTH}", auth))
    assert not result.report.lossy
    vault = one(result, "SecretStore", "vault")["spec"]["provider"]["vault"]
    assert vault["auth"]["kubernetes"]["serviceAccount"]["audiences"] == ["x", "y"]


@pytest.mark.parametrize(
    ("token", "audiences"),
    [
        ("{serviceAccountRef: {name: sync}}", ["vault"]),
        ("{serviceAccountRef: {name: sync, audiences: [x]}}", ["x", "vault"]),
        ("{serviceAccountRef: {name: sync, audiences: [x]}, audiences: [y]}", ["x", "y"]),
        (
            "{serviceAccountRef: {name: sync, audiences: [x, vault]}, audiences: [vault, y]}",
            ["x", "vault", "y"],
        ),
        ("{serviceAccountRef: {name: sync, audiences: [x]}, audiences: []}", ["x"]),
    ],
)
def test_vault_jwt_audiences_are_the_refs_then_the_tokens_or_vault(
    token: str, audiences: list[str]
) -> None:
    auth = f"{{jwt: {{role: r, kubernetesServiceAccountToken: {token}}}}}"
    result = convert_text(VAULT_STORE.replace("{AUTH}", auth))
    assert not result.report.lossy
    jwt = one(result, "SecretStore", "vault")["spec"]["provider"]["vault"]["auth"]["jwt"]
    assert jwt["serviceAccount"]["audiences"] == audiences


def test_vault_jwt_with_no_audience_at_all_is_lossy() -> None:
    token = "{serviceAccountRef: {name: s}, audiences: []}"
    auth = f"{{jwt: {{role: r, kubernetesServiceAccountToken: {token}}}}}"
    result = convert_text(VAULT_STORE.replace("{AUTH}", auth))
    path = "spec.provider.vault.auth.jwt.kubernetesServiceAccountToken.audiences"
    assert findings(result, "SecretStore a/vault")[path][0] == "lossy"


EXTERNAL_SECRET = """
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: es
  namespace: a
  labels: {app: api}
  annotations:
    team: payments
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    kubectl.kubernetes.io/restartedAt: "now"
spec:
  secretStoreRef: {name: vault}
  {TARGET}
  data:
    - secretKey: k
      remoteRef: {key: app}
"""


def test_without_a_template_the_external_secrets_labels_and_annotations_go_to_the_secret() -> None:
    result = convert_text(EXTERNAL_SECRET.replace("{TARGET}", "target: {name: s}"))
    target = one(result, "SecretSync", "es")["spec"]["target"]
    assert target == {"name": "s", "labels": {"app": "api"}, "annotations": {"team": "payments"}}
    assert not result.report.lossy


def test_with_a_template_the_secret_gets_the_templates_metadata_only() -> None:
    target = "target: {template: {metadata: {labels: {tier: x}}}}"
    result = convert_text(EXTERNAL_SECRET.replace("{TARGET}", target))
    assert one(result, "SecretSync", "es")["spec"]["target"] == {"labels": {"tier": "x"}}


DATA_SOURCES = """
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: es, namespace: a}
spec:
  secretStoreRef: {name: vault}
  SOURCES
"""


@pytest.mark.parametrize(
    ("sources", "noted"),
    [
        ("data: [{secretKey: k, remoteRef: {key: a}}]\n  dataFrom: [{extract: {key: b}}]", True),
        ("dataFrom: [{extract: {key: a}}, {extract: {key: b}}]", True),
        ("dataFrom: [{extract: {key: a}}]", False),
        ("data: [{secretKey: k, remoteRef: {key: a}}, {secretKey: l, remoteRef: {key: b}}]", False),
    ],
)
def test_several_sources_get_a_note_that_an_overlapping_key_fails_the_sync(
    sources: str, noted: bool
) -> None:
    result = convert_text(VAULT_STORE.replace("{AUTH}", "{tokenSecretRef: {name: t, key: t}}")
                          + "---" + DATA_SOURCES.replace("SOURCES", sources))  # fmt: skip
    found = findings(result, "ExternalSecret a/es").get("spec.dataFrom")
    assert (found is not None) is noted
    if found is not None:
        assert found[0] == "note"
        assert "the SecretSync does not sync and its status names the key" in found[1]


def test_a_repeated_secret_key_keeps_the_last_item_as_eso_does() -> None:
    sources = (
        "data: [{secretKey: k, remoteRef: {key: first}}, {secretKey: j, remoteRef: {key: j}},"
        " {secretKey: k, remoteRef: {key: last}}]"
    )
    result = convert_text(DATA_SOURCES.replace("SOURCES", sources))
    assert one(result, "SecretSync", "es")["spec"]["data"] == [
        {"secretKey": "j", "remoteRef": {"key": "j"}},
        {"secretKey": "k", "remoteRef": {"key": "last"}},
    ]
    severity, reason = findings(result, "ExternalSecret a/es")["spec.data[0].secretKey"]
    assert severity == "note"
    assert "data[2]" in reason


AWS_STORE = """
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: aws, namespace: a}
spec:
  provider:
    aws:
      service: SERVICE
      region: eu-west-1
      auth:
        secretRef:
          accessKeyIDSecretRef: {name: k, key: id}
          secretAccessKeySecretRef: {name: k, key: s}
"""


@pytest.mark.parametrize(
    ("store", "find", "severity", "path"),
    [
        (AWS_STORE.replace("SERVICE", "ParameterStore"), "{path: /team}", "lossy", "find"),
        (AWS_STORE.replace("SERVICE", "ParameterStore"), "{tags: {a: b}}", "lossy", "find"),
        (AWS_STORE.replace("SERVICE", "SecretsManager"), "{path: /team}", "lossy", "find.path"),
        (AWS_STORE.replace("SERVICE", "SecretsManager"), "{path: team/}", "note", "find"),
        (
            VAULT_STORE.replace("{AUTH}", "{tokenSecretRef: {name: t, key: t}}"),
            "{path: t}",
            "note",
            "find",
        ),
        ("", "{path: t}", "lossy", "find"),  # the store is not in the input
    ],
)
def test_found_key_names_that_differ_from_esos_are_lossy(
    store: str, find: str, severity: str, path: str
) -> None:
    ref = "{name: aws}" if "aws" in store else "{name: vault}"
    es = DATA_SOURCES.replace("SOURCES", f"dataFrom: [{{find: {find}}}]").replace(
        "{name: vault}", ref
    )
    result = convert_text(store + "---" + es if store else es)
    found = findings(result, "ExternalSecret a/es")[f"spec.dataFrom[0].{path}"]
    assert found[0] == severity
    if "ParameterStore" in store:
        assert "/team/db becomes _team_db" in found[1]


def test_a_find_regexp_python_cannot_compile_is_lossy_and_left_out() -> None:
    sources = r"dataFrom: [{find: {name: {regexp: '^\pL+$'}}}, {extract: {key: x}}]"
    result = convert_text(DATA_SOURCES.replace("SOURCES", sources))
    severity, reason = findings(result, "ExternalSecret a/es")["spec.dataFrom[0].find.name.regexp"]
    assert severity == "lossy"
    assert "RE2" in reason
    assert one(result, "SecretSync", "es")["spec"]["dataFrom"] == [{"extract": {"key": "x"}}]


AWS_JWT = """
apiVersion: external-secrets.io/v1
kind: KIND
metadata: {name: aws, namespace: a}
spec:
  provider:
    aws:
      service: SecretsManager
      region: eu-west-1
      ROLES
      auth: {jwt: {serviceAccountRef: {name: sync, REF}}}
"""
IRSA = "arn:aws:iam::123456789012:role/irsa"
HOP = "arn:aws:iam::123456789012:role/hop"
READER = "arn:aws:iam::123456789012:role/reader"


def aws_jwt(kind: str = "SecretStore", roles: str = "", ref: str = "") -> str:
    return AWS_JWT.replace("KIND", kind).replace("ROLES", roles).replace("REF", ref)


def test_aws_jwt_from_a_cluster_exchanges_for_the_annotated_role_then_esos_chain() -> None:
    text = aws_jwt(roles=f"role: {READER}\n      additionalRoles: [{HOP}]", ref="audiences: [x]")
    annotations = {stores.ROLE_ARN_ANNOTATION: IRSA, stores.AUDIENCE_ANNOTATION: "custom"}
    result = convert_text(text, service_accounts={("a", "sync"): annotations})
    assert not result.report.lossy
    aws = one(result, "SecretStore", "aws")["spec"]["provider"]["aws"]
    # ESO: web identity for the annotated role, then additionalRoles, then role.
    assert aws["role"] == IRSA
    assert aws["additionalRoles"] == [HOP, READER]
    assert aws["auth"] == {"serviceAccount": {"name": "sync", "audiences": ["custom", "x"]}}


def test_aws_jwt_without_a_role_converts_from_a_cluster_only() -> None:
    annotations = {stores.ROLE_ARN_ANNOTATION: IRSA}
    result = convert_text(aws_jwt(), service_accounts={("a", "sync"): annotations})
    assert not result.report.lossy
    assert one(result, "SecretStore", "aws")["spec"]["provider"]["aws"]["role"] == IRSA
    files = convert_text(aws_jwt())
    assert findings(files, "SecretStore a/aws")["spec.provider.aws.role"][0] == "lossy"
    assert files.manifests == []


@pytest.mark.parametrize(
    ("accounts", "why"),
    [
        (None, "manifests do not show"),
        ({}, "which ServiceAccount a/sync does not have"),
        ({("a", "sync"): {"other": "x"}}, "which ServiceAccount a/sync does not have"),
    ],
)
def test_aws_jwt_without_the_annotated_role_is_lossy_with_the_fix(
    accounts: dict[tuple[str, str], dict[str, str]] | None, why: str
) -> None:
    result = convert_text(aws_jwt(roles=f"role: {READER}"), service_accounts=accounts)
    severity, reason = findings(result, "SecretStore a/aws")["spec.provider.aws.auth.jwt"]
    assert severity == "lossy"
    assert why in reason
    assert "Fix: set role to the annotated role" in reason
    assert one(result, "SecretStore", "aws")["spec"]["provider"]["aws"]["role"] == READER


def test_aws_jwt_of_a_cluster_store_reads_the_service_account_in_its_namespace() -> None:
    text = aws_jwt("ClusterSecretStore", roles=f"role: {READER}", ref="namespace: ops")
    result = convert_text(
        text, service_accounts={("ops", "sync"): {stores.ROLE_ARN_ANNOTATION: IRSA}}
    )
    aws = one(result, "ClusterSecretStore", "aws")["spec"]["provider"]["aws"]
    assert (aws["role"], aws["additionalRoles"]) == (IRSA, [READER])
    assert stores.aws_service_account(read.parse(text, name="t")[0]) == ("ops", "sync")


def test_aws_jwt_chain_longer_than_five_with_the_annotated_role_is_not_converted() -> None:
    roles = f"role: {READER}\n      additionalRoles: [{HOP}, {HOP}, {HOP}, {HOP}]"
    accounts = {("a", "sync"): {stores.ROLE_ARN_ANNOTATION: IRSA}}
    result = convert_text(aws_jwt(roles=roles), service_accounts=accounts)
    assert result.manifests == []
    assert (
        "at most 5" in findings(result, "SecretStore a/aws")["spec.provider.aws.additionalRoles"][1]
    )


def test_an_ambient_aws_cluster_store_changes_identity_and_is_lossy() -> None:
    text = aws_jwt("ClusterSecretStore").replace(
        "      auth: {jwt: {serviceAccountRef: {name: sync, }}}\n", ""
    )
    result = convert_text(text)
    severity, reason = findings(result, "ClusterSecretStore a/aws")["spec.provider.aws.auth"]
    assert severity == "lossy"
    assert "operator's" in reason
    assert "auth" not in one(result, "ClusterSecretStore", "aws")["spec"]["provider"]["aws"]


def test_from_cluster_reads_the_service_accounts_of_aws_jwt_stores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from secretsync.convert import cluster
    from secretsync.errors import KubeForbiddenError
    from secretsync.kube import inventory

    store = yaml.safe_load(aws_jwt(roles=f"role: {READER}"))
    calls: list[tuple[str, str | None, str | None]] = []

    async def list_all(
        _kube: Any,
        collection: Any,
        *,
        namespace: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        calls.append((collection.plural, namespace, field_selector))
        if collection.plural == "secretstores":
            return [store]
        if collection.plural == "serviceaccounts":
            if namespace == "forbidden":
                raise KubeForbiddenError("no")
            return [{"metadata": {"name": "sync", "annotations": {"k": "v"}}}]
        return []

    monkeypatch.setattr(inventory, "list_all", list_all)
    kube: Any = object()
    found = asyncio.run(cluster.read(kube))
    assert found.service_accounts == {("a", "sync"): {"k": "v"}}
    assert ("serviceaccounts", "a", "metadata.name=sync") in calls
    store["metadata"]["namespace"] = "forbidden"
    assert asyncio.run(cluster.read(kube)).service_accounts == {}


def test_external_secrets_generated_by_a_converted_cluster_external_secret_are_skipped() -> None:
    text = """
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata: {name: shared}
spec:
  namespaces: [a]
  externalSecretSpec:
    secretStoreRef: {name: vault, kind: ClusterSecretStore}
    dataFrom: [{extract: {key: x}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: shared
  namespace: a
  ownerReferences:
    - apiVersion: external-secrets.io/v1
      kind: ClusterExternalSecret
      name: shared
      controller: true
spec:
  secretStoreRef: {name: vault, kind: ClusterSecretStore}
  dataFrom: [{extract: {key: x}}]
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: other
  namespace: a
  ownerReferences:
    - apiVersion: external-secrets.io/v1
      kind: ClusterExternalSecret
      name: gone
      controller: true
spec:
  secretStoreRef: {name: vault, kind: ClusterSecretStore}
  dataFrom: [{extract: {key: x}}]
"""
    result = convert_text(text)
    synced = sorted(m["metadata"]["name"] for m in result.manifests)
    assert synced == ["other", "shared"]  # one "shared": the ClusterExternalSecret's
    note = findings(result, "ExternalSecret a/shared")["metadata.ownerReferences"]
    assert note[0] == "note"
    assert "ClusterExternalSecret shared" in note[1]


def test_cluster_external_secret_keeps_the_findings_of_every_namespace() -> None:
    text = """
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: vault, namespace: b}
spec:
  provider:
    vault:
      server: https://vault.example
      path: secret
      auth: {tokenSecretRef: {name: t, key: t}}
---
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata: {name: ces}
spec:
  namespaces: [a, b, c]
  externalSecretSpec:
    secretStoreRef: {name: vault}
    refreshInterval: 1d
    data: [{secretKey: k, remoteRef: {key: secret/data/x}}]
"""
    result = convert_text(text)
    syncs_ = [m for m in result.manifests if m["kind"] == "SecretSync"]
    assert sorted(m["metadata"]["namespace"] for m in syncs_) == ["a", "b", "c"]
    (ces,) = [o for o in result.report if o.kind == "ClusterExternalSecret"]
    reasons = [(f.path, f.reason) for f in ces.findings]
    # The same in every namespace: reported once, as it is.
    assert [p for p, _ in reasons].count("spec.externalSecretSpec.refreshInterval") == 1
    # Only where SecretStore b/vault is known is the mount removed; elsewhere the store is
    # unknown: each namespace's finding says where.
    assert any(r.startswith("in namespace b: ") and "mount" in r for _, r in reasons)
    assert any(r.startswith("in namespace a: ") and "not in the input" in r for _, r in reasons)
    assert any(r.startswith("in namespace c: ") and "not in the input" in r for _, r in reasons)
    by_ns = {m["metadata"]["namespace"]: m for m in syncs_}
    assert by_ns["b"]["spec"]["data"][0]["remoteRef"]["key"] == "x"
    assert by_ns["a"]["spec"]["data"][0]["remoteRef"]["key"] == "secret/data/x"


def test_cluster_external_secret_unconvertible_in_one_namespace_is_reported_there() -> None:
    text = """
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata: {name: ces}
spec:
  namespaces: [a]
  namespaceSelectors: [{matchExpressions: [{key: team, operator: In, values: [x]}]}]
  externalSecretSpec:
    secretStoreRef: {name: vault, kind: ClusterSecretStore}
    data: [{secretKey: k, remoteRef: {key: x}}]
"""
    result = convert_text(text, namespace_labels={"b": {"team": "x"}, "c": {"team": "y"}})
    assert sorted(m["metadata"]["namespace"] for m in result.manifests) == ["a", "b"]
    bad = text.replace("operator: In", "operator: Like")
    result = convert_text(bad, namespace_labels={"b": {"team": "x"}})
    (ces,) = [o for o in result.report if o.kind == "ClusterExternalSecret"]
    lossy = [f.reason for f in ces.findings if f.severity == "lossy"]
    assert any(f.path == "spec.namespaceSelectors" and "'Like'" in f.reason for f in ces.findings)
    assert lossy
    # Nothing converts in any namespace: not converted, and said so.
    none = convert_text(text.replace("data: [{secretKey: k, remoteRef: {key: x}}]", "data: []"),
                        namespace_labels={})  # fmt: skip
    (ces,) = [o for o in none.report if o.kind == "ClusterExternalSecret"]
    assert ces.converted is False
    assert ces.findings, "dropped silently"


def test_unwritable_output_or_report_exits_2_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = str(FIXTURES / "lossless" / "aws-v1.yaml")
    missing = tmp_path / "no-such-dir" / "x"
    for flag in ("-o", "--report"):
        code, _, err = run(capsys, source, flag, str(missing))
        assert code == 2, err
        assert f"{missing}: cannot be written" in err
        assert "Traceback" not in err


def test_input_that_is_not_utf8_exits_2_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \xff}\n"
    code, _, err = run(capsys, "-", stdin=io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))
    assert code == 2
    assert "- (stdin): cannot be read (not UTF-8" in err
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(raw)
    code, _, err = run(capsys, str(bad))
    assert code == 2
    assert f"{bad}: cannot be read (not UTF-8" in err


def test_on_change_is_refresh_interval_0_and_only_a_note() -> None:
    sources = "refreshPolicy: OnChange\n  data: [{secretKey: k, remoteRef: {key: a}}]"
    result = convert_text(DATA_SOURCES.replace("SOURCES", sources))
    assert one(result, "SecretSync", "es")["spec"]["refreshInterval"] == "0"
    assert findings(result, "ExternalSecret a/es")["spec.refreshPolicy"][0] == "note"
    created = convert_text(
        DATA_SOURCES.replace("SOURCES", sources.replace("OnChange", "CreatedOnce"))
    )
    assert findings(created, "ExternalSecret a/es")["spec.refreshPolicy"][0] == "lossy"


def test_a_stores_refresh_interval_is_only_a_note() -> None:
    text = VAULT_STORE.replace("{AUTH}", "{tokenSecretRef: {name: t, key: t}}").replace(
        "spec:\n", "spec:\n  refreshInterval: 60\n"
    )
    result = convert_text(text)
    assert findings(result, "SecretStore a/vault")["spec.refreshInterval"][0] == "note"
    assert not result.report.lossy


@pytest.mark.parametrize(("interval", "ok"), [("1h30m", True), ("0", True), ("1.5s", True),
                                              ("1d", False), ("h", False)])  # fmt: skip
def test_refresh_intervals_are_read_with_the_models_duration_parser(
    interval: str, ok: bool
) -> None:
    sources = f"refreshInterval: '{interval}'\n  data: [{{secretKey: k, remoteRef: {{key: a}}}}]"
    result = convert_text(DATA_SOURCES.replace("SOURCES", sources))
    assert ("refreshInterval" in one(result, "SecretSync", "es")["spec"]) is ok
    assert result.report.lossy is not ok


def test_convert_has_one_definition_of_each_shared_name() -> None:
    package = Path(manifests.__file__).parent
    sources = "".join(p.read_text() for p in sorted(package.glob("*.py")))
    for definition in ("class Unconvertible(", "GROUP = ", "VERSIONS = ", '"(not ESO)"'):
        assert sources.count(definition) == 1, definition
    assert "DURATION" not in sources  # the model's duration parser is used
    assert not (package / "namespaces.py").exists()  # engine.selectors is used
    assert re.search(r"^from secretsync.engine import selectors$", sources, re.M)
