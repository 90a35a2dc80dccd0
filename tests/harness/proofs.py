"""Evidence that an operator Pod (and which one) did a sync, for the end-to-end tests.

Three independent traces, none of which a Pod-less operator could leave:

- the status's dataHash is keyed with the HMAC key in the `secretsync-state` Secret of
  the release's own namespace (the Pod's --state-namespace), so it was written by an
  operator of that release;
- the active Pod's log (`kubectl logs`) holds the audit record of each remote read, with
  the namespace's own identity (its IAM role, its Vault role), and the standby's holds none;
- moto's record of the roles assumed through AssumeRoleWithWebIdentity names the
  namespace's role and a session of its ServiceAccount.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from harness import delivery, pods
from harness.devenv import DevEnv
from harness.teams import Team, aws_role
from secretsync.engine import hashing


def assumed_roles(env: DevEnv) -> list[dict[str, Any]]:
    """The roles moto's STS handed out credentials for (AssumeRole*)."""
    with urllib.request.urlopen(f"{env.aws_endpoint}/moto-api/data.json", timeout=10) as resp:  # noqa: S310 - local moto
        data = json.load(resp)
    return [dict(r) for r in data.get("sts", {}).get("AssumedRole", [])]


def synced_by_release(
    team: Team,
    *,
    release_namespace: str,
    selector: str,
    syncs: tuple[str, ...] = ("db", "api"),
    standby_idle: bool = True,
) -> pods.PodInfo:
    """Assert that the team's SecretSyncs are Synced with the expected bytes by the active
    Pod of the release (see the module docstring); returns that Pod. With `standby_idle`,
    also that no other Pod read the team's secrets (false after a take-over, when the
    new active Pod once stood by, but not the other way round)."""
    env = team.env
    objects = team.wait_synced(*syncs)
    key = delivery.state_key(env, release_namespace)
    for name in syncs:
        _, data = team.expected[name]
        assert team.secret_data(name) == data, f"Secret of {name} holds other data"
        status = objects[name]["status"]
        assert status["dataHash"] == hashing.data_hash(key, data), (
            f"{team.namespace}/{name}: dataHash not keyed with {release_namespace}'s state key"
        )
    api = env.api_client()
    active = pods.active_pod(api, release_namespace, selector)
    reads = {
        (r["secretsync"], r["identity"], r["outcome"])
        for r in pods.audit_records(pods.log(env, release_namespace, active.name))
    }
    vault_identity = f"vault:kubernetes/kubernetes/{team.namespace}"
    for name in syncs:
        identity = aws_role(team.namespace) if name in team.aws_syncs else vault_identity
        assert (f"{team.namespace}/{name}", identity, "success") in reads, (
            f"no audit record of {team.namespace}/{name} as {identity} in {active.name}'s log"
        )
    for other in pods.list_pods(api, release_namespace, selector) if standby_idle else ():
        if other.name != active.name and not other.terminating:
            records = pods.audit_records(pods.log(env, release_namespace, other.name))
            ours = [r for r in records if r["secretsync"].startswith(f"{team.namespace}/")]
            assert ours == [], f"the standby {other.name} read remote secrets: {ours}"
    if any(name in team.aws_syncs for name in syncs):
        sessions = {
            (r["role_arn"], r["session_name"])
            for r in assumed_roles(env)
            if r["role_arn"] == aws_role(team.namespace)
        }
        assert sessions == {(aws_role(team.namespace), f"secretsync-{team.namespace}.sync")}, (
            sessions
        )
    return active
