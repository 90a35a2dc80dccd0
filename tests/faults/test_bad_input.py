"""Bad input, generated: each malformed SecretSync or SecretStore is refused at admission
with a message naming the field, or accepted and reported on its status; the operator
never crashes and never loops hot. And a corpus of template sandbox escapes (SSTI)
is refused, every one.

Hypothesis draws the documents from a vocabulary of good and bad values for every field
of the API (and unknown fields, wrong types, empty and oversized values); they are sent
to the real apiserver (its CRD schema and CEL rules) and the real operator."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faults import world
from faults.size import FULL
from harness import operator as op
from harness import scenario, vaultsetup
from harness.devenv import DevEnv

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("faults_crds")]

DOCUMENTS = 300 if FULL else 60
REPORT_BOUND = 90.0  # seconds for the operator to report on every accepted object
HOT_LOOP_CPU = 0.25  # of one core, averaged over a quiet period afterwards

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.just([]), st.just({}), st.text()
)
NAMES = st.sampled_from(["db", "vault", "missing", "x" * 63, "x" * 300, "Bad_Name", "", "-a"])
DURATIONS = st.sampled_from(["1h", "10s", "0", "5m", "-1s", "1x", "", "99999999h", "1.5h", "1h30m"])
TYPES = st.sampled_from(
    [
        "Opaque",
        "kubernetes.io/tls",
        "kubernetes.io/dockerconfigjson",
        "kubernetes.io/service-account-token",
        "bootstrap.kubernetes.io/token",
        "x" * 400,
        "",
    ]
)
SECRET_KEYS = st.sampled_from(["password", "a.b", "bad key!", "", ".", "..", "x" * 300, "ü"])
REMOTE_KEYS = st.sampled_from(["{ns}/k0", "{ns}/missing", "", "x" * 3000, "../etc/passwd", "a//b"])
TEMPLATES = st.sampled_from(
    [
        "{{ value }}",
        "{{ nope }}",
        "{{ value | b64enc }}",
        "{{ value | fromjson }}",
        "{% for %}",
        "{{ value.__class__ }}",
        "x" * 5000,
        "",
    ]
)


def maybe(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict where each field may be missing, a value from its vocabulary (most of them
    valid) or, less often, of a wrong type."""
    return st.fixed_dictionaries(
        {}, optional={k: st.one_of(v, v, v, JUNK) for k, v in fields.items()}
    )


REMOTE_REF = maybe(
    key=REMOTE_KEYS,
    property=st.sampled_from(["p", "nope", "", "a.b"]),
    version=st.sampled_from(["1", "AWSCURRENT", "", "latest"]),
)
DATA_ITEM = maybe(secretKey=SECRET_KEYS, remoteRef=REMOTE_REF)
DATA_FROM = maybe(
    extract=maybe(key=REMOTE_KEYS, property=st.sampled_from(["p", ""])),
    find=maybe(
        path=st.sampled_from(["{ns}/", "", "/"]),
        name=maybe(regexp=st.sampled_from(["^k", "(", ""])),
    ),
)
TARGET = maybe(
    name=NAMES,
    type=TYPES,
    creationPolicy=st.sampled_from(["Owner", "Orphan", "Merge", "Bogus"]),
    deletionPolicy=st.sampled_from(["Retain", "Delete", "Bogus"]),
    immutable=st.booleans(),
    labels=st.dictionaries(
        st.sampled_from(["a", "bad key", "x" * 70]), st.text(max_size=5), max_size=2
    ),
    annotations=st.dictionaries(st.sampled_from(["a", "b/c"]), st.text(max_size=5), max_size=2),
    template=maybe(data=st.dictionaries(SECRET_KEYS, TEMPLATES, max_size=2)),
)
# A document is a valid one with a few of its fields replaced (by a good, an odd or a bad
# value, or one of the wrong type), or added; so every field is tried, alone and in
# combination, and enough documents pass admission to reach the operator.
VALID_SYNC: dict[str, Any] = {
    "storeRef": {"name": "vault"},
    "refreshInterval": "1h",
    "data": [{"secretKey": "password", "remoteRef": {"key": "{ns}/k0", "property": "p"}}],
}
SYNC_FIELDS: dict[tuple[str | int, ...], st.SearchStrategy[Any]] = {
    ("storeRef", "name"): NAMES,
    ("storeRef", "kind"): st.sampled_from(["SecretStore", "ClusterSecretStore", "Bogus"]),
    ("refreshInterval",): DURATIONS,
    ("target",): TARGET,
    ("target", "type"): TYPES,
    ("target", "template"): maybe(data=st.dictionaries(SECRET_KEYS, TEMPLATES, max_size=2)),
    ("data",): st.lists(DATA_ITEM, max_size=3),
    ("data", 0, "secretKey"): SECRET_KEYS,
    ("data", 0, "remoteRef"): REMOTE_REF,
    ("data", 0, "remoteRef", "key"): REMOTE_KEYS,
    ("data", 0, "remoteRef", "property"): st.sampled_from(["p", "nope", "", "a.b"]),
    ("dataFrom",): st.lists(DATA_FROM, max_size=2),
    ("rollout",): maybe(
        restart=st.lists(maybe(kind=st.sampled_from(["Deployment", "Pod"]), name=NAMES), max_size=2)
    ),
    ("unknownField",): JUNK,
}


def _replaced(doc: Any, changes: list[tuple[tuple[str | int, ...], Any]]) -> Any:
    out = json.loads(json.dumps(doc))
    for path, value in changes:
        node = out
        for step in path[:-1]:
            if isinstance(node, dict):
                node = node.setdefault(step, {})
            elif isinstance(node, list) and isinstance(step, int) and step < len(node):
                node = node[step]
            else:
                break
        else:
            if isinstance(node, dict):
                node[path[-1]] = value
    return out


VALID_STORE: dict[str, Any] = {
    "provider": {
        "vault": {
            "server": "{vault}",
            "path": "secret",
            "version": "v2",
            "auth": {"kubernetes": {"role": "{ns}", "serviceAccount": {"name": "sync"}}},
        }
    }
}
STORE_FIELDS: dict[tuple[str | int, ...], st.SearchStrategy[Any]] = {
    ("provider", "vault", "server"): st.sampled_from(
        ["{vault}", "not a url", "", "https://nowhere.invalid:8200"]
    ),
    ("provider", "vault", "path"): st.sampled_from(["secret", "", "/", "nope"]),
    ("provider", "vault", "version"): st.sampled_from(["v1", "v2", "v3"]),
    ("provider", "vault", "auth", "kubernetes", "role"): st.sampled_from(["{ns}", "other", ""]),
    ("provider", "vault", "auth", "kubernetes", "serviceAccount"): maybe(
        name=st.sampled_from(["sync", "missing", ""])
    ),
    ("provider", "vault", "auth", "token"): maybe(
        secretRef=maybe(name=NAMES, key=st.sampled_from(["token", ""]))
    ),
    ("provider", "aws"): maybe(
        service=st.sampled_from(["SecretsManager", "ParameterStore", "S3"]),
        region=st.sampled_from(["eu-west-1", "", "mars-1"]),
        role=st.sampled_from(["arn:aws:iam::123456789012:role/r", "not-an-arn"]),
    ),
    ("refreshBudget",): maybe(callsPerSecond=st.integers(-5, 100000), burst=st.integers(-5, 10**6)),
    ("changeCheckInterval",): DURATIONS,
    ("conditions",): st.just([{"namespaces": ["a"]}]),
}


def _documents(
    valid: dict[str, Any], fields: dict[tuple[str | int, ...], st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    """A valid document with up to three fields replaced, now and then by junk."""
    return st.lists(
        st.sampled_from(sorted(fields, key=str)).flatmap(
            lambda path: st.tuples(
                st.just(path), st.one_of(fields[path], fields[path], fields[path], JUNK)
            )
        ),
        max_size=3,
    ).map(lambda changes: _replaced(valid, changes))


SYNC_SPEC = _documents(VALID_SYNC, SYNC_FIELDS)
STORE_SPEC = _documents(VALID_STORE, STORE_FIELDS)


def _field(refusal: str) -> str:
    """The field a refusal names (`spec.target.type: Invalid value...` -> spec.target.type)."""
    found = re.search(r"(spec[\w.\[\]-]*)", refusal)
    return found.group(1) if found else refusal[:80]


def _fill(value: Any, ns: str, vault: str) -> Any:
    """Put the test's namespace and OpenBao address where the vocabulary has placeholders."""
    text = json.dumps(value).replace("{ns}", ns).replace("{vault}", vault)
    return json.loads(text)


def _create(custom: Any, ns: str, plural: str, kind: str, name: str, spec: Any) -> str | None:
    """Create the object; None if accepted, else the apiserver's refusal."""
    body = {
        "apiVersion": scenario.API,
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }
    try:
        custom.create_namespaced_custom_object(scenario.GROUP, scenario.VERSION, ns, plural, body)
    except kubernetes.client.ApiException as exc:
        if exc.status != 422:
            raise
        return str(json.loads(exc.body or "{}").get("message", ""))
    return None


@dataclasses.dataclass
class Fuzz:
    """The module's namespace, its operator, and what became of each document."""

    ns: str
    custom: Any
    proc: Any
    log_start: int
    refused: dict[str, str] = dataclasses.field(default_factory=dict)
    accepted: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (plural, name)


@pytest.fixture(scope="module")
def fuzz(faults_env: DevEnv, faults_api: Any, faults_log: Path) -> Iterator[Fuzz]:
    ns = world.vault_team(faults_env, faults_api, "fuzz", server=faults_env.vault_addr)
    vaultsetup.put(faults_env, f"{ns}/k0", {"p": "not-a-secret-value"})
    start = faults_log.stat().st_size if faults_log.exists() else 0
    with op.running(faults_env, faults_log) as proc:
        yield Fuzz(ns, kubernetes.client.CustomObjectsApi(faults_api), proc, start)


@settings(
    max_examples=DOCUMENTS,
    deadline=None,
    derandomize=True,  # CI sees the same documents every run
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    document=st.one_of(SYNC_SPEC.map(lambda s: ("sync", s)), STORE_SPEC.map(lambda s: ("store", s)))
)
def test_generated_documents_are_refused_naming_the_field_or_accepted(
    document: tuple[str, Any], fuzz: Fuzz, faults_env: DevEnv
) -> None:
    which, spec = document
    kind, plural = (
        ("SecretSync", "secretsyncs") if which == "sync" else ("SecretStore", "secretstores")
    )
    name = f"{which}-{len(fuzz.refused) + len(fuzz.accepted)}"
    message = _create(
        fuzz.custom, fuzz.ns, plural, kind, name, _fill(spec, fuzz.ns, faults_env.vault_addr)
    )
    if message is None:
        fuzz.accepted.append((plural, name))
        return
    fuzz.refused[name] = message
    assert "spec" in message, f"the refusal names no field: {message}"


def test_every_accepted_document_is_reported_and_the_operator_stays_calm(
    fuzz: Fuzz, faults_log: Path, figures: Callable[..., None]
) -> None:
    assert fuzz.accepted, "no generated document was accepted: the vocabulary is too wild"

    def get(plural: str, name: str) -> Any:
        return fuzz.custom.get_namespaced_custom_object(
            scenario.GROUP, scenario.VERSION, fuzz.ns, plural, name
        )

    def unreported() -> list[str]:
        out = []
        for plural, name in fuzz.accepted:
            obj = get(plural, name)
            cond = scenario.ready(obj) or {}
            current = cond.get("observedGeneration") == obj["metadata"]["generation"]
            if not current or not cond.get("message"):
                out.append(name)
        return out

    world.wait_for(lambda: not unreported(), REPORT_BOUND)
    reasons: dict[str, int] = {}
    for plural, name in fuzz.accepted:
        got = get(plural, name)
        cond = scenario.condition(got)
        reasons[cond["reason"]] = reasons.get(cond["reason"], 0) + 1
        assert "internal error" not in cond["message"], (name, got["spec"], cond)
    # Quiet now: what the operator does from here on is retries with backoff.
    process = psutil.Process(fuzz.proc.pid)
    cpu_before = sum(process.cpu_times()[:2])
    time.sleep(15)
    cpu = (sum(process.cpu_times()[:2]) - cpu_before) / 15
    assert fuzz.proc.poll() is None, "the operator exited"
    log = faults_log.read_bytes()[fuzz.log_start :].decode(errors="replace")
    figures(
        "generated bad input",
        documents=len(fuzz.refused) + len(fuzz.accepted),
        refused_at_admission=len(fuzz.refused),
        accepted_and_reported=len(fuzz.accepted),
        reasons=reasons,
        operator_cpu_afterwards=round(cpu, 3),
        refusals_seen=sorted({_field(m) for m in fuzz.refused.values()}),
    )
    assert "Traceback" not in log
    assert cpu < HOT_LOOP_CPU


# Template sandbox escapes: server-side template injection payloads for Jinja2.
SSTI = [
    "{{ p.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ config }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ range.__class__ }}",
    "{{ p|attr('__class__') }}",
    "{{ [].pop.__self__ }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ p.__getattribute__('__class__') }}",
    "{{ request.application.__globals__ }}",
    "{{ dict.__subclasses__() }}",
    "{% set x = p.__class__ %}{{ x }}",
]


def test_template_sandbox_escapes_are_all_refused(
    faults_env: DevEnv, faults_api: Any, faults_log: Path, figures: Callable[..., None]
) -> None:
    ns = world.vault_team(faults_env, faults_api, "ssti", server=faults_env.vault_addr)
    vaultsetup.put(faults_env, f"{ns}/k0", {"p": "template-input"})
    docs = []
    for i, payload in enumerate(SSTI):
        doc = world.sync(ns, f"t{i}", f"{ns}/k0")
        doc["spec"]["data"][0]["secretKey"] = "p"
        doc["spec"]["target"] = {"template": {"data": {"out": payload}}}
        docs.append(doc)
    with op.running(faults_env, faults_log):
        world.apply_many(faults_env, docs)
        world.wait_all(faults_api, ns, len(SSTI), timeout=60, reason="InvalidSpec")
    messages = {
        o["metadata"]["name"]: scenario.condition(o)["message"]
        for o in world.syncs_in(faults_api, ns)
    }
    figures("template sandbox escapes (SSTI corpus)", payloads=len(SSTI), refused=len(messages))
    assert world.managed_secrets(faults_api, ns) == []
    for name, message in messages.items():
        assert message.startswith("spec.target.template.data['out']: "), (name, message)
