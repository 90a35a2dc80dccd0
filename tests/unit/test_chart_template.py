"""The Helm chart, offline: `helm lint`, its CRDs identical to crds/, the derived
manifests up to date, a hardened Deployment whose arguments the real CLI accepts, the
RBAC rules exactly as docs/rbac.md lists them, and values that are all documented and
schema-checked. (Needs helm: tools/build.sh builds it, or finds it cached.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from harness import delivery, devenv
from secretsync import __main__ as cli
from secretsync import config, probes

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "secretsync"
RBAC_DOC = REPO / "docs" / "rbac.md"

Rule = tuple[str, str, str, str]  # (API group, resource, verb, resource name or "*")


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    return devenv.build_binaries().helm_bin


def render(helm_bin: Path, *values: str, namespace: str = "ops") -> list[dict[str, Any]]:
    return delivery.template(helm_bin, *values, namespace=namespace)


def refused(helm_bin: Path, *values: str) -> str:
    args = ["template", "rel", str(CHART)]
    for value in values:
        args += ["--set", value]
    proc = subprocess.run([str(helm_bin), *args], capture_output=True, text=True, check=False)
    assert proc.returncode != 0, f"helm template {' '.join(values)} was accepted"
    return proc.stderr


# --- the chart as a whole ---------------------------------------------------------------


def test_helm_lint_is_clean(helm_bin: Path) -> None:
    proc = subprocess.run(
        [str(helm_bin), "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_chart_crds_are_the_repositorys_crds_plus_kopf_peering() -> None:
    ours = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert len(ours) == 3
    assert {n: chart[n] for n in ours if n in chart} == ours
    assert set(chart) - set(ours) == {"kopf.dev_peerings.yaml"}
    peering = [d["metadata"]["name"] for d in yaml.safe_load_all(chart["kopf.dev_peerings.yaml"])]
    assert peering == ["clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"]


def test_derived_manifests_are_up_to_date(helm_bin: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "manifests.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HELM": str(helm_bin)},
    )
    assert proc.returncode == 0, proc.stderr


def test_app_version_is_the_packages_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_the_image_defaults_to_the_app_version_and_a_digest_wins(helm_bin: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    image = delivery.container(render(helm_bin))["image"]
    assert image == f"ghcr.io/secretsync/secretsync:{chart['appVersion']}"
    digest = "sha256:" + "ab" * 32
    pinned = delivery.container(render(helm_bin, f"image.digest={digest}"))["image"]
    assert pinned == f"ghcr.io/secretsync/secretsync@{digest}"


# --- the Deployment ---------------------------------------------------------------------------


def test_the_pod_is_non_root_read_only_without_capabilities_under_seccomp(
    helm_bin: Path,
) -> None:
    objects = render(helm_bin)
    pod = delivery.find(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = delivery.container(objects)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # The only writable path is a small in-memory /tmp.
    mounts = delivery.container(objects)["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == ["/tmp"]
    assert pod["volumes"] == [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
    ]


def test_the_container_has_requests_and_limits(helm_bin: Path) -> None:
    resources = delivery.container(render(helm_bin))["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}


def test_probes_call_the_endpoints_the_operator_serves(helm_bin: Path) -> None:
    container = delivery.container(render(helm_bin, "health.port=9001"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    cfg = config.from_args(cli.build_parser().parse_args(container["args"]))
    assert cfg.health_port == ports["health"] == 9001
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    routes = probes.application(cast(Any, None)).router.routes()
    served = {r.resource.canonical for r in routes if r.resource is not None}
    assert {"/healthz", "/readyz"} <= served


def test_the_cli_accepts_the_deployments_arguments_cluster_wide(helm_bin: Path) -> None:
    objects = render(helm_bin, namespace="ops")
    cfg = config.from_args(cli.build_parser().parse_args(delivery.container(objects)["args"]))
    peering = delivery.find(objects, "ClusterKopfPeering")["metadata"]["name"]
    assert cfg.clusterwide
    assert cfg.peering == peering == "rel-secretsync"
    assert cfg.state_namespace == "ops"
    assert (cfg.metrics_port, cfg.log_format, cfg.log_level) == (8080, "json", "info")
    env = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in delivery.container(objects)["env"]
    }
    assert env == {"POD_NAMESPACE": "metadata.namespace", "POD_ID": "metadata.name"}


def test_the_cli_accepts_the_deployments_arguments_namespaced_with_webhook(
    helm_bin: Path,
) -> None:
    objects = render(
        helm_bin,
        "watch.namespaces={team-a,team-b}",
        "webhook.enabled=true",
        "webhook.secretName=hook",
        "metrics.enabled=false",
        namespace="ops",
    )
    cfg = config.from_args(cli.build_parser().parse_args(delivery.container(objects)["args"]))
    assert cfg.namespaces == ("team-a", "team-b")
    assert cfg.webhook_secret == ("ops", "hook")
    assert (cfg.webhook_port, cfg.metrics_port) == (8443, 0)
    service = delivery.find(objects, "Service")
    assert [p["name"] for p in service["spec"]["ports"]] == ["webhook"]
    peerings = delivery.every(objects, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]


def test_two_replicas_form_a_peering_group_behind_a_disruption_budget(helm_bin: Path) -> None:
    objects = render(helm_bin)
    deployment = delivery.find(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pdb = delivery.find(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    peering = delivery.find(objects, "ClusterKopfPeering")
    assert peering["metadata"]["annotations"] == {
        "argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true"
    }
    # One replica may run standalone; two may not.
    single = render(helm_bin, "replicaCount=1", "peering.enabled=false")
    assert "--peering" not in " ".join(delivery.container(single)["args"])
    assert not delivery.every(single, "ClusterKopfPeering")
    assert "needs peering.enabled=true" in refused(helm_bin, "peering.enabled=false")


def test_service_monitor_only_when_asked(helm_bin: Path) -> None:
    assert not delivery.every(render(helm_bin), "ServiceMonitor")
    objects = render(helm_bin, "metrics.serviceMonitor.enabled=true")
    monitor = delivery.find(objects, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    service = delivery.find(objects, "Service")
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]


def test_the_audit_objects_only_when_asked_and_the_cli_accepts_the_cronjobs_arguments(
    helm_bin: Path,
) -> None:
    assert not [o for o in render(helm_bin) if "audit" in o["metadata"]["name"]]
    rbac_only = render(helm_bin, "audit.rbac.create=true")
    assert not delivery.every(rbac_only, "CronJob")
    assert delivery.find(rbac_only, "ClusterRole", "rel-secretsync-audit")
    objects = render(
        helm_bin,
        "audit.cronJob.enabled=true",
        "audit.cronJob.pushgateway=http://pushgateway.monitoring:9091",
        "audit.cronJob.args={--environment-label=env,--rotation-max-age=30d}",
    )
    job = delivery.find(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    binding = delivery.find(objects, "ClusterRoleBinding", "rel-secretsync-audit")
    assert binding["subjects"][0]["name"] == job["serviceAccountName"] == "rel-secretsync-audit"
    args = cli.build_parser().parse_args(job["containers"][0]["args"])
    assert (args.command, args.output, args.pushgateway) == (
        "audit",
        "json",
        "http://pushgateway.monitoring:9091",
    )
    assert (args.environment_label, args.rotation_max_age) == ("env", "30d")
    assert job["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


# --- RBAC against docs/rbac.md -------------------------------------------------------------


def documented_rules() -> list[dict[str, Any]]:
    """The rows of the rule table in docs/rbac.md."""
    text = RBAC_DOC.read_text()
    match = re.search(r"<!-- rbac-rules -->\n(.*?)<!-- /rbac-rules -->", text, re.S)
    assert match
    rows = []
    for line in match.group(1).strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        _, group, resources, names, verbs, scope, when = cells[:7]

        def ticked(cell: str) -> list[str]:
            return re.findall(r"`([^`]+)`", cell)

        rows.append(
            {
                "group": "" if group == "core" else group.strip("`"),
                "resources": ticked(resources),
                "names": ["*"] if names == "any" else ticked(names),
                "verbs": ticked(verbs),
                "scope": scope,
                "when": when,
            }
        )
    return rows


def flat(rules: list[dict[str, Any]]) -> set[Rule]:
    return {
        (group, resource, verb, name)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames") or ["*"]
    }


def expected(scope: str, *, namespaced: bool, flags: set[str], peering: str) -> set[Rule]:
    out: set[Rule] = set()
    for row in documented_rules():
        when = row["when"]
        if row["scope"] != scope:
            continue
        if "namespaced mode" in when and not namespaced:
            continue
        if "cluster-wide mode" in when and namespaced:
            continue
        if any(
            f"`{flag}`" in when and flag not in flags
            for flag in (
                "peering.enabled",
                "rbac.rollouts",
                "rbac.configMapCaRef",
                "rbac.sopsDocuments",
                "sharding.shards",
            )
        ):
            continue
        names = [
            {"<peering>": peering, "<webhook.secretName>": "hook"}.get(n, n) for n in row["names"]
        ]
        if "webhook.enabled" not in flags:
            names = [n for n in names if n != "hook"]
        out |= {
            (row["group"], r, v, n) for r in row["resources"] for v in row["verbs"] for n in names
        }
    return out


OPTIONS = {
    "defaults": ((), {"peering.enabled"}),
    "everything": (
        (
            "rbac.rollouts=true",
            "rbac.configMapCaRef=true",
            "rbac.sopsDocuments=true",
            "webhook.enabled=true",
            "webhook.secretName=hook",
        ),
        {
            "peering.enabled",
            "rbac.rollouts",
            "rbac.configMapCaRef",
            "rbac.sopsDocuments",
            "webhook.enabled",
        },
    ),
    "single": (("replicaCount=1", "peering.enabled=false"), set()),
    "sharded": (
        ("replicaCount=3", "peering.enabled=false", "sharding.shards=6"),
        {"sharding.shards"},
    ),
}


def shard_role(objects: list[dict[str, Any]], flags: set[str]) -> None:
    """The Leases' own Role, in the release namespace, exactly when sharded."""
    roles = [
        r for r in delivery.every(objects, "Role") if r["metadata"]["name"].endswith("-shards")
    ]
    if "sharding.shards" not in flags:
        assert not roles
        return
    (role,) = roles
    assert role["metadata"]["namespace"] == "ops"
    want = expected("release namespace (sharding)", namespaced=False, flags=flags, peering="")
    assert flat(role["rules"]) == want


@pytest.mark.parametrize("option", OPTIONS)
def test_cluster_wide_rbac_is_exactly_the_documented_rules(helm_bin: Path, option: str) -> None:
    values, flags = OPTIONS[option]
    objects = render(helm_bin, *values)
    roles = delivery.every(objects, "ClusterRole")
    assert [r["metadata"]["name"] for r in roles] == ["rel-secretsync"]
    shard_role(objects, flags)
    assert all(r["metadata"]["name"].endswith("-shards") for r in delivery.every(objects, "Role"))
    want = expected("namespaces served", namespaced=False, flags=flags, peering="rel-secretsync")
    want |= expected("cluster", namespaced=False, flags=flags, peering="rel-secretsync")
    assert flat(roles[0]["rules"]) == want
    binding = delivery.find(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-secretsync", "namespace": "ops"}
    ]


@pytest.mark.parametrize("option", OPTIONS)
def test_namespaced_rbac_is_exactly_the_documented_rules(helm_bin: Path, option: str) -> None:
    values, flags = OPTIONS[option]
    objects = render(helm_bin, "watch.namespaces={team-a,team-b}", *values)
    peering = "rel-secretsync"
    shard_role(objects, flags)
    roles = {
        (r["metadata"]["namespace"], r["metadata"]["name"]): r
        for r in delivery.every(objects, "Role")
        if not r["metadata"]["name"].endswith("-shards")
    }
    assert set(roles) == {
        ("team-a", "rel-secretsync"),
        ("team-b", "rel-secretsync"),
        ("ops", "rel-secretsync-state"),
    }
    served = expected("namespaces served", namespaced=True, flags=flags, peering=peering)
    for namespace in ("team-a", "team-b"):
        assert flat(roles[(namespace, "rel-secretsync")]["rules"]) == served
    state = expected("release namespace", namespaced=True, flags=flags, peering=peering)
    assert flat(roles[("ops", "rel-secretsync-state")]["rules"]) == state
    cluster_roles = delivery.every(objects, "ClusterRole")
    assert [r["metadata"]["name"] for r in cluster_roles] == ["rel-secretsync-cluster-stores"]
    assert flat(cluster_roles[0]["rules"]) == expected(
        "cluster", namespaced=True, flags=flags, peering=peering
    )
    # Nothing cluster-wide about Secrets, tokens or workloads in this mode.
    assert not {
        r for r in flat(cluster_roles[0]["rules"]) if r[1] in ("secrets", "serviceaccounts/token")
    }
    bindings = delivery.every(objects, "RoleBinding") + delivery.every(
        objects, "ClusterRoleBinding"
    )
    assert len(bindings) == 4 + ("sharding.shards" in flags)


def test_every_rbac_rule_of_the_chart_is_in_the_documented_table(helm_bin: Path) -> None:
    # The reverse direction, for every mode and option together: no rule is undocumented.
    documented: set[Rule] = set()
    for row in documented_rules():
        names = [
            {"<peering>": "rel-secretsync", "<webhook.secretName>": "hook"}.get(n, n)
            for n in row["names"]
        ]
        documented |= {
            (row["group"], r, v, n) for r in row["resources"] for v in row["verbs"] for n in names
        }
    everything = OPTIONS["everything"][0]
    for mode in ((), ("watch.namespaces={team-a}",)):
        objects = render(helm_bin, *mode, *everything)
        sharded = render(helm_bin, *mode, *OPTIONS["sharded"][0])
        objects += delivery.every(sharded, "ClusterRole") + delivery.every(sharded, "Role")
        for role in delivery.every(objects, "ClusterRole") + delivery.every(objects, "Role"):
            assert flat(role["rules"]) <= documented, role["metadata"]["name"]


# --- values ------------------------------------------------------------------------------------


def test_the_schema_refuses_unknown_keys_and_wrong_types(helm_bin: Path) -> None:
    assert "additional properties 'rollout' not allowed" in refused(helm_bin, "rbac.rollout=true")
    assert "replicaCount" in refused(helm_bin, "replicaCount=0")
    assert "logging/format" in refused(helm_bin, "logging.format=xml")
    assert "watch/namespaces" in refused(helm_bin, "watch.namespaces={Team_A}")
    assert "webhook.secretName" in refused(helm_bin, "webhook.enabled=true")


PASS_THROUGH = {  # documented as a whole
    "resources",
    "podSecurityContext",
    "securityContext",
    "audit.cronJob.resources",
}


def value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in PASS_THROUGH:
            paths += value_paths(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_every_value_is_documented_in_values_yaml_readme_and_schema() -> None:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    paths = value_paths(values)
    assert len(paths) > 40
    readme = (CHART / "README.md").read_text()
    schema = __import__("json").loads((CHART / "values.schema.json").read_text())
    # A "# -- ..." comment right above each documented key in values.yaml.
    lines = text.splitlines()
    stack: list[tuple[int, str]] = []
    commented = set()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z]\w*):", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        j = i - 1
        while (
            j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --")
        ):
            j -= 1
        if j >= 0 and lines[j].strip().startswith("# --"):
            commented.add(".".join(k for _, k in stack))
    for path in paths:
        assert path in commented, f"values.yaml: no '# --' comment above {path}"
        assert f"| `{path}` |" in readme, f"charts/secretsync/README.md: no row for {path}"
        node = schema
        for key in path.split("."):
            assert key in node.get("properties", {}), f"values.schema.json: no {path}"
            node = node["properties"][key]


def test_sharded_replicas_get_their_lease_role_and_the_cli_accepts_their_arguments(
    helm_bin: Path,
) -> None:
    objects = render(
        helm_bin, "replicaCount=3", "peering.enabled=false", "sharding.shards=12", namespace="ops"
    )
    cfg = config.from_args(cli.build_parser().parse_args(delivery.container(objects)["args"]))
    assert (cfg.shards, cfg.shard_group, cfg.peering) == (12, "rel-secretsync", None)
    assert not delivery.every(objects, "ClusterKopfPeering")
    roles = {r["metadata"]["name"]: r for r in delivery.every(objects, "Role")}
    lease_rules = roles["rel-secretsync-shards"]["rules"]
    assert roles["rel-secretsync-shards"]["metadata"]["namespace"] == "ops"
    assert lease_rules == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["list", "create", "update", "delete"],
        }
    ]
    cluster_rules = delivery.find(objects, "ClusterRole")["rules"]
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]} in cluster_rules
    # Leases nowhere else, and no namespace list without sharding.
    assert all("leases" not in str(r) for r in delivery.every(objects, "ClusterRole"))
    plain = delivery.find(render(helm_bin), "ClusterRole")["rules"]
    assert all("list" not in r["verbs"] for r in plain if r["resources"] == ["namespaces"])
    assert "needs peering.enabled=false" in refused(helm_bin, "sharding.shards=3")
    assert "minimum" in refused(helm_bin, "sharding.shards=-1", "peering.enabled=false")
