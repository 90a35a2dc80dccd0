"""`secretsync convert`: ESO manifests (tests/unit/fixtures/eso/) become secretsync
manifests the CRDs accept, and whatever does not convert faithfully is reported by
object and field path, with exit codes 0, 1 and 2."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from secretsync import __main__ as cli
from secretsync.convert import manifests, read, templates
from secretsync.models import store as store_models
from secretsync.models import sync as sync_models

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "eso"
CRDS = {
    "SecretSync": "secretsync.io_secretsyncs.yaml",
    "SecretStore": "secretsync.io_secretstores.yaml",
    "ClusterSecretStore": "secretsync.io_clustersecretstores.yaml",
}


def run(
    capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    with pytest.MonkeyPatch.context() as patch:
        if stdin is not None:
            patch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(["convert", *argv])
    out, err = capsys.readouterr()
    return code, [d for d in yaml.safe_load_all(out) if d], err


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
            "serviceAccount": {"name": "sync", "audiences": ["sts.amazonaws.com", "extra-audience"]}
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
            "secretsync.io/converted-from": "external-secrets.io/ClusterExternalSecret"
        }
        assert sync["spec"]["target"] == {"name": "shared-db"}


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
    ("SecretStore team-x/aws-session-tags", "spec.refreshInterval", False),
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
    ("ExternalSecret team-x/deletion-merge", "spec.data[1].secretKey", False),
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
    assert [d["secretKey"] for d in merge["spec"]["data"]] == ["a"]
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


def test_translated_templates_render_like_eso_would() -> None:
    from secretsync.engine import render  # the engine is not convert's layer; tests may

    source = 'u={{ .user | upper }} p={{ index . "pw" | b64enc }} m={{ .mode | default "on" }}'
    jinja = templates.translate(source).text
    assert jinja is not None
    out = render.render({"k": jinja}, {"user": b"app", "pw": b"s3cret", "mode": b""})
    assert out == {"k": b"u=APP p=czNjcmV0 m=on"}
