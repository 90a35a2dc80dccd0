"""A provider installed as a package syncs through the real operator: the example plug-in
(examples/plugins/secretsync-httpjson), pip-installed the way an image installs it, read by
`spec.provider.plugin` stores as each namespace's own ServiceAccount.

The plug-in's reference server checks every bearer token with the apiserver's TokenReview
(audience `httpjson`, the operator's default for the plug-in) and lets
system:serviceaccount:<ns>:reader read `<ns>/` only, so the identity is really the
namespace's. The module runs operators of its own, started with the plug-in on their
PYTHONPATH (the session's shared operator has no plug-in installed).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from harness import kube, leaks, scenario
from harness import operator as op
from harness.devenv import REPO, TOKEN_REVIEWER, DevEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("crds")]

EXAMPLE = REPO / "examples" / "plugins" / "secretsync-httpjson"
READER = "reader"  # the ServiceAccount each test's store names
STORE = "httpjson"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package, built and installed into a folder of its own with pip (as an
    image's `pip install` does), for the operator's PYTHONPATH; the test venv is left as
    it is."""
    site = tmp_path_factory.mktemp("plugin-site")
    # Built from a clean copy: pip builds in the source folder, where a stale build/ from
    # an earlier run could put deleted modules into the wheel.
    source = tmp_path_factory.mktemp("plugin-source") / EXAMPLE.name
    shutil.copytree(
        EXAMPLE,
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", ".*_cache", "__pycache__"),
    )
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site)]
    done = subprocess.run(
        [*pip, str(source)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"pip could not install {EXAMPLE}:\n{done.stdout}{done.stderr}"
    assert list(site.glob("secretsync_httpjson-*.dist-info/entry_points.txt"))
    return site


def with_plugin(site: Path) -> dict[str, str]:
    """The environment of a process that has the plug-in installed."""
    paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


class Server:
    """The example's reference server, and its admin API (writes need the admin token)."""

    def __init__(self, url: str, admin_token: str) -> None:
        self.url = url
        self._admin_token = admin_token

    def put(self, key: str, value: str) -> None:
        """Write a new version of a secret."""
        request = urllib.request.Request(  # noqa: S310 - the loopback server this test started
            f"{self.url}/v1/secrets/{urllib.parse.quote(key)}",
            data=json.dumps({"value": value}).encode(),
            method="PUT",
            headers={"Authorization": f"Bearer {self._admin_token}"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - see above
            pass


@pytest.fixture
def server(
    env: DevEnv, api: Any, namespace: str, plugin_site: Path, tmp_path: Path
) -> Iterator[Server]:
    """The reference server, checking tokens with the environment's TokenReview and
    letting this test namespace's `reader` read `<namespace>/` only."""
    reviewer_namespace, reviewer = TOKEN_REVIEWER  # bound to system:auth-delegator by devenv
    reviewer_token = kube.token_request(
        api, namespace=reviewer_namespace, service_account=reviewer, audiences=[], seconds=3600
    )
    (tmp_path / "reviewer-token").write_text(reviewer_token)
    (tmp_path / "ca.crt").write_bytes(env.api_ca_pem)
    admin_token = secrets.token_urlsafe(24)
    (tmp_path / "admin-token").write_text(admin_token)
    config = {
        "adminTokenFile": str(tmp_path / "admin-token"),
        "tokenReview": {
            "server": env.api_server,
            "caFile": str(tmp_path / "ca.crt"),
            "tokenFile": str(tmp_path / "reviewer-token"),
            "audience": "httpjson",
        },
        "allow": {f"system:serviceaccount:{namespace}:{READER}": [f"{namespace}/"]},
    }
    (tmp_path / "server.json").write_text(json.dumps(config))
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secretsync_httpjson.server",
                "--port",
                "0",
                "--config",
                str(tmp_path / "server.json"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **with_plugin(plugin_site)},
        )

    def listening() -> str | None:
        if proc.poll() is not None:
            raise RuntimeError(f"the httpjson server exited ({proc.returncode}): {log.read_text()}")
        for line in log.read_text().splitlines():
            if line.startswith("httpjson-server: listening on "):
                return line.rsplit(" ", 1)[1]
        return None

    try:
        url = kube.eventually(listening, timeout=30, what="the httpjson server to listen")
        yield Server(url, admin_token)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def own_operator(
    env: DevEnv, namespace: str, operator_log: Path, plugin_site: Path
) -> Iterator[int]:
    """An operator of this test's own, with the plug-in installed, watching only its
    namespace; yields where its output starts in the session's operator log."""
    start = operator_log.stat().st_size if operator_log.exists() else 0
    with op.running(
        env, operator_log, "--namespace", namespace, extra_env=with_plugin(plugin_site)
    ):
        yield start


def store(namespace: str, spec: dict[str, Any], name: str = STORE) -> dict[str, Any]:
    return {
        "apiVersion": scenario.API,
        "kind": "SecretStore",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"provider": {"plugin": spec}},
    }


def sync(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": scenario.API,
        "kind": "SecretSync",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "storeRef": {"name": STORE, "kind": "SecretStore"},
            "refreshInterval": "1h",
            **spec,
        },
    }


def force_sync(api: Any, namespace: str, name: str) -> None:
    kubernetes.client.CustomObjectsApi(api).patch_namespaced_custom_object(
        scenario.GROUP,
        scenario.VERSION,
        namespace,
        "secretsyncs",
        name,
        {"metadata": {"annotations": {"secretsync.io/force-sync": uuid.uuid4().hex}}},
    )


def test_a_plugin_store_syncs_as_the_namespaces_own_service_account(
    env: DevEnv,
    api: Any,
    namespace: str,
    server: Server,
    own_operator: int,
    operator_log: Path,
    secret_values: set[bytes],
) -> None:
    used = {
        name: f"{name}-{uuid.uuid4().hex}" for name in ("password", "token", "a", "b", "rotated")
    }
    theirs = f"theirs-{uuid.uuid4().hex}"
    secret_values.update(v.encode() for v in [*used.values(), theirs])
    server.put(f"{namespace}/db", json.dumps({"username": "app", "password": used["password"]}))
    server.put(f"{namespace}/api-token", used["token"])
    server.put(f"{namespace}/found/db-a", used["a"])
    server.put(f"{namespace}/found/db-b", used["b"])
    server.put(f"other-{namespace}/db", theirs)  # exists, but not for this namespace
    scenario.service_account(api, namespace, READER)
    scenario.apply(
        env,
        store(
            namespace,
            {"name": "httpjson", "serviceAccount": {"name": READER}, "config": {"url": server.url}},
        ),
    )

    ready = scenario.store_ready(api, "SecretStore", namespace, STORE)
    # The server named the caller from its TokenRequest token, through TokenReview.
    assert (ready["status"], ready["reason"]) == ("True", "Valid"), ready
    assert f"httpjson:system:serviceaccount:{namespace}:{READER}" in ready["message"]

    scenario.apply(
        env,
        sync(
            namespace,
            "db",
            {
                "data": [
                    {
                        "secretKey": "password",
                        "remoteRef": {"key": f"{namespace}/db", "property": "password"},
                    },
                    {"secretKey": "token", "remoteRef": {"key": f"{namespace}/api-token"}},
                ]
            },
        ),
        sync(
            namespace,
            "all",
            {
                "dataFrom": [
                    {"extract": {"key": f"{namespace}/db"}},
                    {"find": {"path": f"{namespace}/found/", "name": {"regexp": "db-[ab]$"}}},
                ]
            },
        ),
        sync(
            namespace,
            "steal",
            {
                "data": [
                    {"secretKey": "password", "remoteRef": {"key": f"other-{namespace}/db"}},
                ]
            },
        ),
    )

    db = scenario.wait_for_reason(api, namespace, "db", "Synced")
    assert scenario.secret_data(api, namespace, "db") == {
        "password": used["password"].encode(),
        "token": used["token"].encode(),
    }
    assert db["status"]["syncedVersions"] == {f"{namespace}/db": "1", f"{namespace}/api-token": "1"}
    scenario.wait_for_reason(api, namespace, "all", "Synced")
    assert scenario.secret_data(api, namespace, "all") == {
        "username": b"app",
        "password": used["password"].encode(),
        f"{namespace}_found_db-a": used["a"].encode(),
        f"{namespace}_found_db-b": used["b"].encode(),
    }
    steal = scenario.wait_for_reason(api, namespace, "steal", "AccessDenied")
    assert scenario.condition(steal)["status"] == "False"
    assert scenario.secret(api, namespace, "steal") is None

    # A new version reaches the Secret.
    server.put(f"{namespace}/api-token", used["rotated"])
    force_sync(api, namespace, "db")
    kube.eventually(
        lambda: (
            (scenario.secret_data(api, namespace, "db") or {}).get("token")
            == used["rotated"].encode()
        ),
        timeout=60,
        what="the rotated token in the Secret",
    )

    log = operator_log.read_bytes()[own_operator:]
    assert b"httpjson" in log, "the operator's log says nothing of the plug-in: wrong file?"
    sources = {"operator log": log, **leaks.cluster_sources(api)}
    assert leaks.find(sources, [*(v.encode() for v in used.values()), theirs.encode()]) == []


def test_a_token_issued_for_another_audience_is_refused_by_the_service(
    env: DevEnv, api: Any, namespace: str, server: Server, own_operator: int
) -> None:
    scenario.service_account(api, namespace, READER)
    spec = {
        "name": "httpjson",
        "serviceAccount": {"name": READER, "audiences": ["not-httpjson"]},
        "config": {"url": server.url},
    }
    scenario.apply(env, store(namespace, spec))

    ready = scenario.store_ready(api, "SecretStore", namespace, STORE)

    assert ready["status"] == "False", ready
    assert "refused the ServiceAccount token" in ready["message"], ready


def test_a_store_naming_a_provider_that_is_not_installed_says_which_are(
    env: DevEnv, api: Any, namespace: str, own_operator: int
) -> None:
    missing = f"nope-{uuid.uuid4().hex[:6]}"
    scenario.apply(
        env, store(namespace, {"name": missing, "config": {"url": "http://127.0.0.1:9"}})
    )

    ready = scenario.store_ready(api, "SecretStore", namespace, STORE)

    assert ready["status"] == "False", ready
    assert repr(missing) in ready["message"]
    for installed in ("aws", "httpjson", "vault"):
        assert installed in ready["message"].split("installed:", 1)[1], ready["message"]


def test_a_plugin_may_not_take_a_built_in_providers_name(env: DevEnv, namespace: str) -> None:
    refused = env.kubectl(
        "apply",
        "-f",
        "-",
        input_text=json.dumps(store(namespace, {"name": "aws", "config": {}})),
        check=False,
    )

    assert refused.returncode != 0
    assert "spec.provider.plugin.name: aws, vault and sops are built in" in refused.stderr
