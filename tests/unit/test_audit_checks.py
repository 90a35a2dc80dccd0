"""The audit's checks on objects written here (the seeded cluster of
tests/integration/test_audit.py runs them against a real apiserver and providers)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import pytest

from secretsync.errors import ConfigError
from secretsync.models.timestamps import epoch
from secretsync.providers.base import RemoteMetadata
from secretsync.scan import allow, configs, literals, rotation, secretsyncs, workloads
from secretsync.scan.model import CHECKS, Finding, ObjectRef, Severity
from secretsync.scan.report import Report, table, to_json, to_sarif

# Built at run time: a literal key in this file would trip the repository's secret scan.
ACCESS_KEY = "AKIA" + "QWERTYUIOPASDFGH"[::-1]
TOKEN = "".join(chr(ord("a") + (i * 7) % 26) + str(i % 10) for i in range(20))


def deployment(env: list[dict[str, Any]], **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "api", "namespace": "team-a"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "env": env, **container}]}}},
    }


def scan(kind: str, obj: dict[str, Any]) -> list[Finding]:
    with literals.detectors():
        return list(workloads.check(kind, obj))


def test_a_literal_key_in_env_is_found_by_field_and_detector_never_by_value() -> None:
    (finding,) = scan(
        "Deployment", deployment([{"name": "AWS_ACCESS_KEY_ID", "value": ACCESS_KEY}])
    )
    assert finding.check == "SS001"
    assert finding.ref == ObjectRef(kind="Deployment", namespace="team-a", name="api")
    assert finding.field == "spec.template.spec.containers[app].env[AWS_ACCESS_KEY_ID].value"
    assert "AWS Access Key" in finding.evidence
    assert ACCESS_KEY[:6] not in repr(finding)


def test_arguments_with_credentials_are_found_plain_flags_are_not() -> None:
    obj = deployment([], args=["--verbose", f"--url=https://u:{TOKEN}@host/x", "--port=8080"])
    assert [f.field for f in scan("Deployment", obj)] == [
        "spec.template.spec.containers[app].args[1]"
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOG_LEVEL", "debug"),
        ("DB_SECRET_NAME", "db-credentials"),
        ("PASSWORD_FILE", "/run/secrets/db/password"),
        ("UPSTREAM", "http://api.backend.svc:8080/v1"),
        ("REQUEST_ID", "3f2c0e1b-9a7d-4f1e-8a2b-1c2d3e4f5a6b"),
        ("PUBLIC_IP", "203.0.113.7"),
    ],
)
def test_configuration_that_looks_like_a_secret_is_not_reported(name: str, value: str) -> None:
    assert scan("Deployment", deployment([{"name": name, "value": value}])) == []


def test_secrets_as_environment_variables_are_reported_per_reference() -> None:
    env = [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]
    obj = deployment(env, envFrom=[{"configMapRef": {"name": "c"}}, {"secretRef": {"name": "s"}}])
    where = "spec.template.spec.containers[app]"
    assert [(f.check, f.field, f.evidence) for f in scan("Deployment", obj)] == [
        ("SS003", f"{where}.env[DB_PASSWORD].valueFrom.secretKeyRef", "key pw of Secret db"),
        ("SS003", f"{where}.envFrom[1].secretRef", "every key of Secret s"),
    ]


def test_a_flag_and_its_value_in_two_words_are_scanned_together() -> None:
    obj = deployment([], args=["--log-level", "debug", "--db-password", TOKEN[:14]])
    assert [f.field for f in scan("Deployment", obj)] == [
        "spec.template.spec.containers[app].args[3]"
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [("REQUIRE_PASSWORD", "false"), ("PASSWORD_POLICY", "strong"), ("PASSWORD_MIN", "12")],
)
def test_settings_about_secrets_are_not_secrets(name: str, value: str) -> None:
    assert scan("Deployment", deployment([{"name": name, "value": value}])) == []
    # The same names with a real value are reported.
    assert scan("Deployment", deployment([{"name": name, "value": TOKEN[:14]}]))


def test_other_controllers_objects_are_scanned_themselves() -> None:
    obj = deployment([{"name": "K", "value": ACCESS_KEY}])
    obj["metadata"]["ownerReferences"] = [{"kind": "Database", "name": "x", "controller": True}]
    assert len(scan("Deployment", obj)) == 1
    obj["metadata"]["ownerReferences"][0]["kind"] = "Deployment"
    assert len(scan("Deployment", obj)) == 1  # a Deployment is never left to another
    assert scan("ReplicaSet", obj) == []  # a Deployment's ReplicaSet is: it is reported


def test_objects_a_controller_made_are_left_to_their_controller() -> None:
    pod: dict[str, Any] = {
        "metadata": {
            "name": "api-1",
            "namespace": "team-a",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "api", "controller": True}],
        },
        "spec": {"containers": [{"name": "app", "env": [{"name": "K", "value": ACCESS_KEY}]}]},
    }
    assert scan("Pod", pod) == []
    del pod["metadata"]["ownerReferences"]
    assert len(scan("Pod", pod)) == 1


def test_config_map_files_are_scanned_as_files() -> None:
    obj = {
        "metadata": {"name": "cfg", "namespace": "team-a"},
        "data": {
            "application.properties": f"server.port=8080\ndb.password={TOKEN}\n",
            "app.env": f"LOG_LEVEL=info\nexport DB_PASSWORD='{TOKEN[:15]}'\n",
            "settings": f"REQUIRE_PASSWORD=false\nAPI_KEY={TOKEN[:12]}\n",
            "features.env": "REQUIRE_PASSWORD=false\nLOG_LEVEL=debug\n",
            "nginx.conf": "server { listen 80; }\n",
            "retries": "3",
        },
    }
    with literals.detectors():
        found = list(configs.config_map(obj))
    assert [(f.check, f.field) for f in found] == [
        ("SS002", "data[app.env]"),
        ("SS002", "data[application.properties]"),
        ("SS002", "data[settings]"),
    ]


@pytest.mark.parametrize(
    ("meta", "reported"),
    [
        ({}, True),
        ({"labels": {"app.kubernetes.io/managed-by": "terraform"}}, False),
        ({"annotations": {"meta.helm.sh/release-name": "web"}}, False),
        ({"annotations": {"secretsync.io/merged-by": "team-a/db"}}, False),
        ({"ownerReferences": [{"kind": "SealedSecret", "name": "x"}]}, False),
        ({"name": "secretsync-state", "labels": {"app.kubernetes.io/name": "secretsync"}}, False),
        ({"name": "secretsync-state"}, True),  # not the operator's: no label
        ({"labels": {"app.kubernetes.io/managed-by": "Helm"}}, False),
        ({"labels": {"app.kubernetes.io/managed-by": "kubectl"}}, True),
        ({"labels": {"owner": "helm"}}, False),
        ({"labels": {"owner": "team-x"}}, True),
    ],
)
def test_hand_made_secrets_are_those_no_manager_marks(meta: dict[str, Any], reported: bool) -> None:
    obj = {"metadata": {"name": "s", "namespace": "team-a", **meta}}
    obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    found = list(configs.hand_made(obj, now=1767225600 + 10 * 86400))
    assert bool(found) is reported
    if found:
        assert found[0].evidence.endswith("created 10 days ago")


def store(namespace: str, name: str, aws: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"provider": {"aws": aws}}}


def sync(namespace: str, name: str, key: str, *, ready: dict[str, Any] | None = None) -> Any:
    body = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "storeRef": {"name": "aws"},
            "data": [{"secretKey": "k", "remoteRef": {"key": key}}],
        },
        "status": {"conditions": [ready]} if ready else {},
    }
    return body


KEYS_ONLY = {
    "service": "SecretsManager",
    "region": "eu-west-1",
    "auth": {
        "secretRef": {
            "accessKeyId": {"name": "k", "key": "id"},
            "secretAccessKey": {"name": "k", "key": "s"},
        }
    },
}
AWS = {
    "service": "SecretsManager",
    "region": "eu-west-1",
    "role": "arn:aws:iam::123456789012:role/r",
    "auth": {"serviceAccount": {"name": "sync"}},
}


def test_one_remote_secret_in_two_environments_is_reported_at_each_use() -> None:
    stores = secretsyncs.stores_of([store(ns, "aws", AWS) for ns in ("p", "s", "p2")], [])
    views = secretsyncs.views(
        [sync("p", "a", "db"), sync("s", "a", "db"), sync("p2", "a", "db")], stores
    )
    labels = {
        "p": {"environment": "prod"},
        "s": {"environment": "staging"},
        "p2": {"environment": "prod"},
    }
    found = list(secretsyncs.shared_across_environments(views, labels, "environment"))
    assert sorted(f.ref.namespace or "" for f in found) == ["p", "p2", "s"]
    assert "also synced into s (staging)" in next(
        f.evidence for f in found if f.ref.namespace == "p"
    )
    # The same key in another account is another secret.
    other = dict(AWS, role="arn:aws:iam::999999999999:role/r")
    stores = secretsyncs.stores_of([store("p", "aws", AWS), store("s", "aws", other)], [])
    views = secretsyncs.views([sync("p", "a", "db"), sync("s", "a", "db")], stores)
    assert list(secretsyncs.shared_across_environments(views, labels, "environment")) == []


def test_the_account_is_the_last_roles_and_a_store_without_a_role_is_its_own_scope() -> None:
    chained = dict(AWS, additionalRoles=["arn:aws:iam::999999999999:role/x"])
    stores = secretsyncs.stores_of(
        [store("p", "aws", chained), store("s", "aws", AWS), store("k", "aws", KEYS_ONLY)], []
    )
    scopes = [secretsyncs.remote_scope(s, s.spec) for s in stores if s.spec is not None]
    assert "account 999999999999" in scopes[0]
    assert "account 123456789012" in scopes[1]
    assert "account of SecretStore/k/aws" in scopes[2]


def test_what_the_sync_checks_cannot_see_is_noted() -> None:
    stores = secretsyncs.stores_of([store("t", "aws", AWS), store("t", "bad", {})], [])
    finder = sync("t", "f", "db")
    finder["spec"] = {"storeRef": {"name": "aws"}, "dataFrom": [{"find": {"path": "team/"}}]}
    lost = sync("t", "lost", "db")
    lost["spec"]["storeRef"] = {"name": "gone"}
    views = secretsyncs.views([finder, lost], stores)
    notes = {(n.check, n.where, n.reason) for n in secretsyncs.unchecked(views, stores)}
    assert ("SS007", "SecretStore/t/bad", "its spec is unreadable") in notes
    find_reason = "dataFrom.find: the remote keys are chosen at sync time"
    assert ("SS006", "SecretSync t/f", find_reason) in notes
    assert ("SS005", "SecretSync t/lost", "its store SecretStore gone is missing") in notes


def test_rotation_off_or_an_old_value_is_stale_a_rotated_one_is_not() -> None:
    now = 1767225600.0
    old = RemoteMetadata(rotation_enabled=None, last_changed=now - 100 * 86400)
    assert rotation._stale(old, max_age=90 * 86400, now=now) == "current value is 100.0 days old"
    off = RemoteMetadata(rotation_enabled=False, last_changed=now)
    assert rotation._stale(off, max_age=90 * 86400, now=now) == "rotation is off"
    fresh = RemoteMetadata(rotation_enabled=True, last_changed=now - 86400)
    assert rotation._stale(fresh, max_age=90 * 86400, now=now) is None


def test_static_and_ambient_store_logins_are_reported() -> None:
    keys = {
        "secretRef": {
            "accessKeyId": {"name": "k", "key": "id"},
            "secretAccessKey": {"name": "k", "key": "s"},
        }
    }
    stores = secretsyncs.stores_of(
        [store("t", "keys", dict(AWS, auth=keys)), store("t", "sa", AWS)],
        [store("", "ambient", {"service": "SecretsManager", "region": "eu-west-1"})],
    )
    found = {(f.ref.name, f.field) for f in secretsyncs.static_credentials(stores)}
    assert found == {
        ("keys", "spec.provider.aws.auth.secretRef"),
        ("ambient", "spec.provider.aws.auth"),
    }


def test_a_sync_is_reported_once_it_failed_for_longer_than_allowed() -> None:
    stores = secretsyncs.stores_of([store("t", "aws", AWS)], [])
    failing = {
        "type": "Ready",
        "status": "False",
        "reason": "AccessDenied",
        "message": "m",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    views = secretsyncs.views([sync("t", "a", "db", ready=failing)], stores)
    since = 1767225600.0
    assert list(secretsyncs.failing(views, longer_than=3600, now=since + 60)) == []
    (found,) = secretsyncs.failing(views, longer_than=3600, now=since + 7200)
    assert found.evidence == "not Ready for 2h: AccessDenied"


def test_the_allow_list_needs_a_reason_and_a_known_check(tmp_path: Path) -> None:
    path = tmp_path / "allow.yaml"
    path.write_text("allow:\n  - check: SS003\n    name: api\n")
    with pytest.raises(ConfigError, match=r"allow\[0\]: a reason is required"):
        allow.load(path)
    path.write_text("allow:\n  - check: SS999\n    reason: x\n")
    with pytest.raises(ConfigError, match="check must be one of"):
        allow.load(path)
    path.write_text("allow:\n  - check: SS003\n    namespace: 'team-*'\n    reason: later\n")
    entries = allow.load(path)
    finding = Finding(
        check="SS003",
        ref=ObjectRef(kind="Pod", namespace="team-a", name="p"),
        field="f",
        evidence="e",
    )
    other = Finding(
        check="SS003", ref=ObjectRef(kind="Pod", namespace="ops", name="p"), field="f", evidence="e"
    )
    assert allow.split([finding, other], entries) == ([other], [finding])


def report() -> Report:
    ref = ObjectRef(kind="Deployment", namespace="team-a", name="api")
    return Report(
        findings=[
            Finding(check="SS003", ref=ref, field="spec.x", evidence="key pw of Secret db"),
            Finding(
                check="SS001", ref=ref, field="spec.y", evidence="detect-secrets: JSON Web Token"
            ),
        ],
        notes=[],
        allowed=0,
        scanned={"deployments": 1},
    )


def test_report_formats() -> None:
    text = table(report())
    assert text.splitlines()[1].startswith("high      SS001  Deployment team-a/api  spec.y")
    assert "2 findings (critical 0, high 1, medium 0, low 1); 0 allowed" in text
    doc = json.loads(to_json(report()))
    assert [f["severity"] for f in doc["findings"]] == ["high", "low"]
    sarif = json.loads(to_sarif(report()))
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [c.id for c in CHECKS]
    result = sarif["runs"][0]["results"][0]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "SS001"
    assert result["level"] == "error"
    assert report().worst() is Severity.HIGH


def test_api_and_vault_times_parse_to_epoch_seconds() -> None:
    assert epoch("2026-01-01T00:00:00.123456789Z") == pytest.approx(1767225600.123456)
    assert epoch("2026-01-01T01:00:00+01:00") == 1767225600
    assert epoch("2026-01-01T00:00:00") is None  # no zone
    assert epoch("not a time") is None


def test_a_store_that_logs_in_as_the_operator_is_noted_not_asked() -> None:
    ambient = {"service": "SecretsManager", "region": "eu-west-1"}
    stores = secretsyncs.stores_of([], [store("", "ambient", ambient)])
    body = sync("t", "a", "db")
    body["spec"]["storeRef"] = {"name": "ambient", "kind": "ClusterSecretStore"}
    views = secretsyncs.views([body], stores)

    class NoKube:  # any call to the cluster would fail the test
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the audit called kube.{name}")

    result = asyncio.run(rotation.check(cast(Any, NoKube()), views, max_age=1.0, now=1767225600.0))
    assert result.findings == []
    assert [(n.check, n.where) for n in result.notes] == [("SS006", "ClusterSecretStore/ambient")]
    assert "logs in as the operator itself" in result.notes[0].reason
