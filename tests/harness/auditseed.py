"""A cluster seeded for `secretsync audit`: every check's anti-patterns planted, and a
clean set of look-alikes beside them (tests/integration/test_audit.py, docs/audit.md).

Three namespaces: `prod` and `staging` hold the planted findings, `clean` (also prod)
holds look-alikes, and some look-alikes sit beside planted findings in the same objects.
Every planted secret is made here at random, so that no secret-looking literal is ever
committed (the repository's own secret scan, .ci/run), and the leak scans know them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import string
import time
import uuid
from typing import Any, cast

import boto3
import kubernetes

from harness import pki, scenario, teams, vaultsetup
from harness.devenv import AWS_REGION, DevEnv

ENV_LABEL = "environment"
ROTATION_MAX_AGE = 20  # seconds: `--rotation-max-age 20s` in the tests
FAILING_FOR = 1  # seconds: `--failing-for 1s`

Key = tuple[str, str, str, str, str]  # (check, kind, namespace, name, field)


@dataclasses.dataclass(kw_only=True)
class Seeded:
    suffix: str
    prod: str
    staging: str
    clean: str
    cluster_store: str
    planted: set[Key]
    # Per check, how many look-alikes the clean set holds (docs/audit.md's table).
    look_alikes: dict[str, int]
    values: set[str]  # every planted secret, for the leak scans

    @property
    def namespaces(self) -> tuple[str, str, str]:
        return (self.prod, self.staging, self.clean)

    def ours(self, key: Key) -> bool:
        """Whether a finding concerns this seed's objects (the session cluster holds
        other tests' objects too)."""
        _, kind, namespace, name, _ = key
        if kind == "ClusterSecretStore":
            return name.startswith(f"audit-{self.suffix}")
        return namespace in self.namespaces


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class _Planter:
    """Collects the objects to apply, the findings planted and the look-alikes."""

    def __init__(self, env: DevEnv, suffix: str) -> None:
        self.env, self.suffix = env, suffix
        self.docs: list[dict[str, Any]] = []
        self.planted: set[Key] = set()
        self.look_alikes: dict[str, int] = {}
        self.values: set[str] = set()

    def secret(self, value: str) -> str:
        self.values.add(value)
        return value

    def plant(self, check: str, kind: str, namespace: str, name: str, field: str) -> None:
        self.planted.add((check, kind, namespace, name, field))

    def alike(self, check: str, n: int = 1) -> None:
        self.look_alikes[check] = self.look_alikes.get(check, 0) + n


def _workload(kind: str, namespace: str, name: str, container: dict[str, Any]) -> dict[str, Any]:
    pod = {"containers": [{"name": "app", "image": "registry.local/app:1", **container}]}
    template = {"metadata": {"labels": {"app": name}}, "spec": pod}
    spec: dict[str, Any]
    if kind == "Pod":
        spec = {**pod, "restartPolicy": "Never"}
    elif kind == "Job":
        spec = {"template": {**template, "spec": {**pod, "restartPolicy": "Never"}}}
    elif kind == "CronJob":
        job = {"template": {**template, "spec": {**pod, "restartPolicy": "Never"}}}
        spec = {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": job}}
    else:
        spec = {"selector": {"matchLabels": {"app": name}}, "template": template}
        if kind == "StatefulSet":
            spec["serviceName"] = name
    api = "v1" if kind == "Pod" else ("batch/v1" if kind in ("Job", "CronJob") else "apps/v1")
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _containers_field(kind: str) -> str:
    return {
        "Pod": "spec.containers[app]",
        "CronJob": "spec.jobTemplate.spec.template.spec.containers[app]",
    }.get(kind, "spec.template.spec.containers[app]")


def _plant_workloads(p: _Planter, prod: str, staging: str, clean: str) -> None:
    """SS001 and SS003, and their look-alikes."""
    upper = string.ascii_uppercase + "234567"
    mixed = string.ascii_letters + string.digits
    access_key = p.secret("AKIA" + _random(upper, 16))
    db_password = p.secret(_random(mixed, 14))
    api_token = p.secret(_random(mixed, 40))
    agent_password = p.secret(_random(mixed, 12))
    jwt = p.secret(
        ".".join(
            (
                _b64url(b'{"alg":"HS256","typ":"JWT"}'),
                _b64url(json.dumps({"sub": _random(mixed, 10)}).encode()),
                _b64url(secrets.token_bytes(32)),
            )
        )
    )
    debug_password = p.secret(_random(mixed, 16))
    pair_password = p.secret(_random(mixed, 14))
    env_look_alikes = [
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "DB_SECRET_NAME", "value": "db-credentials"},
        {"name": "PASSWORD_FILE", "value": "/run/secrets/db/password"},
        {"name": "UPSTREAM", "value": "http://api.backend.svc:8080/v1"},
        {"name": "REQUIRE_PASSWORD", "value": "false"},
        {"name": "PASSWORD_POLICY", "value": "strong"},
    ]
    p.alike("SS001", len(env_look_alikes))
    p.docs += [
        _workload(
            "Deployment",
            prod,
            "api",
            {
                "env": [
                    {"name": "AWS_ACCESS_KEY_ID", "value": access_key},
                    *env_look_alikes,
                    {
                        "name": "DB_PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
                    },
                ]
            },
        ),
        _workload(
            "CronJob",
            prod,
            "report",
            {
                "args": ["--verbose", f"--db=postgres://report:{db_password}@db:5432/app"],
                "envFrom": [{"secretRef": {"name": "report"}}],
            },
        ),
        _workload(
            "StatefulSet", staging, "cache", {"env": [{"name": "API_TOKEN", "value": api_token}]}
        ),
        _workload(
            "DaemonSet",
            staging,
            "agent",
            {
                "command": ["agent", f"--password={agent_password}"],
                "args": ["--log-level", "info", "--db-password", pair_password],
            },
        ),
        _workload("Job", staging, "migrate", {"env": [{"name": "SESSION_JWT", "value": jwt}]}),
        _workload(
            "Pod", clean, "debug", {"env": [{"name": "DB_PASSWORD", "value": debug_password}]}
        ),
    ]
    deploy, cron = _containers_field("Deployment"), _containers_field("CronJob")
    p.plant("SS001", "Deployment", prod, "api", f"{deploy}.env[AWS_ACCESS_KEY_ID].value")
    p.plant("SS001", "CronJob", prod, "report", f"{cron}.args[1]")
    p.plant("SS001", "StatefulSet", staging, "cache", f"{deploy}.env[API_TOKEN].value")
    p.plant("SS001", "DaemonSet", staging, "agent", f"{deploy}.command[1]")
    p.plant("SS001", "DaemonSet", staging, "agent", f"{deploy}.args[3]")
    p.plant("SS001", "Job", staging, "migrate", f"{deploy}.env[SESSION_JWT].value")
    p.plant("SS001", "Pod", clean, "debug", f"{_containers_field('Pod')}.env[DB_PASSWORD].value")
    p.plant("SS003", "Deployment", prod, "api", f"{deploy}.env[DB_PASSWORD].valueFrom.secretKeyRef")
    p.plant("SS003", "CronJob", prod, "report", f"{cron}.envFrom[0].secretRef")
    # Clean: configuration that looks like secrets to a naive scan, a Secret mounted as a
    # volume (the fix SS003 asks for), an image by digest.
    web = _workload(
        "Deployment",
        clean,
        "web",
        {
            "env": [
                {"name": "FEATURES", "value": "search,checkout,beta-banner"},
                {"name": "SECRET_NAME", "value": "web-tls"},
                {"name": "TOKEN_AUDIENCE", "value": "api.example.com"},
                {"name": "CACHE_TTL", "value": "300"},
            ],
            "args": ["--listen=:8080", "--config=/etc/web/config.yaml"],
            "volumeMounts": [{"name": "creds", "mountPath": "/run/secrets/db", "readOnly": True}],
        },
    )
    web["spec"]["template"]["spec"]["volumes"] = [{"name": "creds", "secret": {"secretName": "db"}}]
    p.docs.append(web)
    p.alike("SS001", 6 + 1)  # web's env and args; the agent's `--log-level info`
    p.alike("SS003", 1)


def _plant_operator_made(p: _Planter, api: Any, namespace: str) -> None:
    """A Deployment some other controller made (its controller owner is an object the
    audit does not list): reported itself. The owner must exist, or the garbage
    collector would delete the Deployment."""
    owner = kubernetes.client.CoreV1Api(api).create_namespaced_config_map(
        namespace,
        kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="owner")),
    )
    password = p.secret(_random(string.ascii_letters + string.digits, 16))
    made = _workload(
        "Deployment", namespace, "made", {"env": [{"name": "DB_PASSWORD", "value": password}]}
    )
    made["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": cast(Any, owner).metadata.uid,
            "controller": True,
        }
    ]
    p.docs.append(made)
    field = f"{_containers_field('Deployment')}.env[DB_PASSWORD].value"
    p.plant("SS001", "Deployment", namespace, "made", field)


def _plant_config(p: _Planter, prod: str, staging: str, clean: str) -> None:
    """SS002 and SS004, and their look-alikes."""
    password = p.secret(_random(string.ascii_letters + string.digits, 18))
    dotenv_password = p.secret(_random(string.ascii_letters + string.digits, 15))
    key = pki.private_key_pem()
    for line in key.splitlines()[1:-1]:
        p.secret(line)
    p.docs += [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": prod},
            "data": {
                "application.properties": "server.port=8080\n"
                f"spring.datasource.password={password}\nlogging.level.root=INFO\n",
                "app.env": f"LOG_LEVEL=info\nexport DB_PASSWORD='{dotenv_password}'\n",
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "tls-material", "namespace": staging},
            "data": {
                "server.key": key,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": clean},
            "data": {
                "nginx.conf": "server {\n  listen 8080;\n  location / { proxy_pass http://a; }\n}",
                "ca.crt": pki.ca_certificate_pem(f"audit-{p.suffix}"),
                "log_level": "info",
                "retries": "3",
                "features.env": "REQUIRE_PASSWORD=false\nLOG_LEVEL=debug\n",
            },
        },
    ]
    p.plant("SS002", "ConfigMap", prod, "app-config", "data[application.properties]")
    p.plant("SS002", "ConfigMap", prod, "app-config", "data[app.env]")
    p.plant("SS002", "ConfigMap", staging, "tls-material", "data[server.key]")
    # nginx.conf, a CA certificate, plain values, a dotenv file of settings; and each
    # namespace's kube-root-ca.crt.
    p.alike("SS002", 5 + 3)

    def secret(
        namespace: str,
        name: str,
        *,
        kind: str = "Opaque",
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        meta = {"name": name, "namespace": namespace, "labels": labels or {}}
        meta["annotations"] = annotations or {}
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": kind,
            "metadata": meta,
            "stringData": {"value": "not-a-planted-secret"} if data is None else data,
        }

    p.docs += [
        secret(staging, "handmade"),
        secret(clean, "helm-values", annotations={"meta.helm.sh/release-name": "web"}),
        secret(
            clean,
            "sh.helm.release.v1.web.v1",
            kind="helm.sh/release.v1",
            labels={"owner": "helm", "name": "web"},
        ),
        secret(clean, "terraform-made", labels={"app.kubernetes.io/managed-by": "terraform"}),
        secret(clean, "helm-made", labels={"app.kubernetes.io/managed-by": "Helm"}),
        # Planted: `kubectl` manages nothing after the command returns.
        secret(prod, "kubectl-made", labels={"app.kubernetes.io/managed-by": "kubectl"}),
        secret(
            clean,
            "web-tls",
            kind="kubernetes.io/tls",
            annotations={"cert-manager.io/certificate-name": "web"},
            data={"tls.crt": "", "tls.key": ""},
        ),
        secret(
            clean,
            "sync-token",
            kind="kubernetes.io/service-account-token",
            annotations={"kubernetes.io/service-account.name": "sync"},
            data={},
        ),
        # Credentials the SS007 stores name, made by another tool.
        secret(prod, "aws-keys", labels={"app.kubernetes.io/managed-by": "terraform"}),
        secret(prod, "vault-token", labels={"app.kubernetes.io/managed-by": "terraform"}),
    ]
    p.plant("SS004", "Secret", staging, "handmade", "metadata")
    p.plant("SS004", "Secret", prod, "kubectl-made", "metadata")
    # Helm-annotated, Helm-labelled, a Helm release, another tool's label (x3),
    # cert-manager's TLS Secret, a ServiceAccount token, and the nine Secrets secretsync
    # writes (planted below).
    p.alike("SS004", 8 + 9)


def _aws(env: DevEnv, service: str) -> Any:
    return cast(Any, boto3).client(
        service,
        endpoint_url=env.aws_endpoint,
        region_name=AWS_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _aws_store(
    namespace: str, endpoint: str, name: str, service: str, auth: dict[str, Any] | None
) -> dict[str, Any]:
    aws: dict[str, Any] = {"service": service, "region": AWS_REGION, "endpoint": endpoint}
    if auth is not None:
        aws["role"] = teams.aws_role(namespace)
        aws["auth"] = auth
    meta: dict[str, Any] = {"name": name}
    kind = "ClusterSecretStore" if not namespace else "SecretStore"
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": scenario.API,
        "kind": kind,
        "metadata": meta,
        "spec": {"provider": {"aws": aws}},
    }


def _token_store(env: DevEnv, namespace: str) -> dict[str, Any]:
    store = vaultsetup.store(env, namespace, name="vault-token")
    token = {"secretRef": {"name": "vault-token", "key": "token"}}
    store["spec"]["provider"]["vault"]["auth"] = {"token": token}
    return store


def _sync(
    namespace: str, name: str, store: str, key: str, *, extract: bool = False
) -> dict[str, Any]:
    source: dict[str, Any] = (
        {"dataFrom": [{"extract": {"key": key}}]}
        if extract
        else {"data": [{"secretKey": "value", "remoteRef": {"key": key}}]}
    )
    return {
        "apiVersion": scenario.API,
        "kind": "SecretSync",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"storeRef": {"name": store}, "refreshInterval": "1h", **source},
    }


def seed(env: DevEnv, api: Any, aws_endpoint: str) -> Seeded:
    """Plant everything, wait until the SecretSyncs settled and the stale remote secrets
    are older than ROTATION_MAX_AGE, then refresh the fresh ones: the audit must run
    within ROTATION_MAX_AGE seconds of the return."""
    suffix = uuid.uuid4().hex[:6]
    prod, staging, clean = f"audit-prod-{suffix}", f"audit-stg-{suffix}", f"audit-clean-{suffix}"
    p = _Planter(env, suffix)
    sm, ssm = _aws(env, "secretsmanager"), _aws(env, "ssm")
    # Stale first: their age must pass ROTATION_MAX_AGE before the audit.
    started = time.time()
    sm.create_secret(
        Name=f"{suffix}/norotate",
        SecretString=json.dumps({"v": p.secret(_random(string.ascii_letters, 20))}),
    )
    ssm.put_parameter(
        Name=f"/{suffix}/old",
        Value=p.secret(_random(string.ascii_letters, 20)),
        Type="SecureString",
    )
    ssm.put_parameter(
        Name=f"/{suffix}/fresh",
        Value=p.secret(_random(string.ascii_letters, 20)),
        Type="SecureString",
    )
    vaultsetup.put(env, f"{clean}/old", {"v": p.secret(_random(string.ascii_letters, 20))})
    vaultsetup.put(env, f"{clean}/fresh", {"v": p.secret(_random(string.ascii_letters, 20))})
    rotated = [f"{suffix}/shared", f"{suffix}/prod-db"]
    for name in rotated:
        sm.create_secret(
            Name=name, SecretString=json.dumps({"v": p.secret(_random(string.ascii_letters, 20))})
        )

    for namespace, environment in ((prod, "prod"), (staging, "staging"), (clean, "prod")):
        scenario.apply(
            env,
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {ENV_LABEL: environment}},
            },
        )
        scenario.service_account(api, namespace, "sync")
    vaultsetup.bind_namespace(env, api, clean)
    sa_auth = {"serviceAccount": {"name": "sync"}}
    cluster_store = f"audit-{suffix}-ambient"
    p.docs += [
        _aws_store(prod, aws_endpoint, "aws", "SecretsManager", sa_auth),
        _aws_store(staging, aws_endpoint, "aws", "SecretsManager", sa_auth),
        _aws_store(clean, aws_endpoint, "aws", "SecretsManager", sa_auth),
        _aws_store(clean, aws_endpoint, "ssm", "ParameterStore", sa_auth),
        vaultsetup.store(env, clean),
        # SS007 planted: static keys, a static Vault token, the operator's ambient identity.
        _aws_store(
            prod,
            aws_endpoint,
            "static-keys",
            "SecretsManager",
            {
                "secretRef": {
                    "accessKeyId": {"name": "aws-keys", "key": "id"},
                    "secretAccessKey": {"name": "aws-keys", "key": "secret"},
                }
            },
        ),
        _token_store(env, prod),
        _aws_store("", aws_endpoint, cluster_store, "SecretsManager", None),
    ]
    p.plant("SS007", "SecretStore", prod, "static-keys", "spec.provider.aws.auth.secretRef")
    p.plant("SS007", "SecretStore", prod, "vault-token", "spec.provider.vault.auth.token")
    p.plant("SS007", "ClusterSecretStore", "", cluster_store, "spec.provider.aws.auth")
    p.alike("SS007", 5)  # the five stores that log in as their namespace's ServiceAccount

    _plant_workloads(p, prod, staging, clean)
    _plant_operator_made(p, api, clean)
    _plant_config(p, prod, staging, clean)

    shared = f"{suffix}/shared"
    data = "spec.data[0].remoteRef.key"
    p.docs += [
        # SS005 planted: one remote secret in prod and in staging.
        _sync(prod, "shared", "aws", shared),
        _sync(staging, "shared", "aws", shared, extract=True),
        # Look-alike: one remote secret in two namespaces of the same environment.
        _sync(prod, "prod-db", "aws", f"{suffix}/prod-db"),
        _sync(clean, "prod-db", "aws", f"{suffix}/prod-db"),
        # SS006 planted: rotation off (Secrets Manager), old values (SSM, Vault KV).
        _sync(prod, "legacy", "aws", f"{suffix}/norotate"),
        _sync(clean, "params-old", "ssm", f"/{suffix}/old"),
        _sync(clean, "vault-old", "vault", f"{clean}/old"),
        # Look-alikes: rotated and recently changed ones.
        _sync(clean, "params-fresh", "ssm", f"/{suffix}/fresh"),
        _sync(clean, "vault-fresh", "vault", f"{clean}/fresh"),
        # SS008 planted: a key that does not exist.
        _sync(prod, "broken", "aws", f"{suffix}/missing"),
    ]
    p.plant("SS005", "SecretSync", prod, "shared", data)
    p.plant("SS005", "SecretSync", staging, "shared", "spec.dataFrom[0].extract.key")
    p.alike("SS005", 2)
    p.plant("SS006", "SecretSync", prod, "legacy", data)
    p.plant("SS006", "SecretSync", clean, "params-old", data)
    p.plant("SS006", "SecretSync", clean, "vault-old", data)
    p.alike("SS006", 6)  # shared x2, prod-db x2, params-fresh, vault-fresh
    p.plant("SS008", "SecretSync", prod, "broken", "status.conditions[Ready]")
    p.alike("SS008", 9)  # every other SecretSync, Ready
    scenario.apply(env, *p.docs)

    for namespace, name in (
        (prod, "shared"),
        (staging, "shared"),
        (prod, "prod-db"),
        (clean, "prod-db"),
        (prod, "legacy"),
        (clean, "params-old"),
        (clean, "vault-old"),
        (clean, "params-fresh"),
        (clean, "vault-fresh"),
    ):
        scenario.wait_for_reason(api, namespace, name, "Synced", timeout=90)
    scenario.wait_for_reason(api, prod, "broken", "NotFound", timeout=90)

    # Age the stale ones past the threshold, then change the fresh ones.
    time.sleep(max(0.0, started + ROTATION_MAX_AGE + 2 - time.time()))
    for name in rotated:
        sm.rotate_secret(SecretId=name, RotationRules={"AutomaticallyAfterDays": 30})
    ssm.put_parameter(
        Name=f"/{suffix}/fresh",
        Value=p.secret(_random(string.ascii_letters, 20)),
        Type="SecureString",
        Overwrite=True,
    )
    vaultsetup.put(env, f"{clean}/fresh", {"v": p.secret(_random(string.ascii_letters, 20))})
    time.sleep(FAILING_FOR + 1)
    return Seeded(
        suffix=suffix,
        prod=prod,
        staging=staging,
        clean=clean,
        cluster_store=cluster_store,
        planted=p.planted,
        look_alikes=p.look_alikes,
        values=p.values,
    )
