"""Which SecretSyncs an event or a change check concerns."""

from __future__ import annotations

from secretsync.engine import changes, matching
from secretsync.engine.rollouts import combined_hash
from secretsync.models.remote import RemoteRef
from secretsync.models.sync import SecretSyncSpec, parse_spec

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:team-a/db-AbCdEf"


def spec(**fields: object) -> SecretSyncSpec:
    return parse_spec({"storeRef": {"name": "s"}, **fields})


def test_an_arn_with_its_random_suffix_names_the_secret() -> None:
    assert matching.names(ARN) == {ARN, "team-a/db"}
    assert matching.names("team-a/db") == {"team-a/db"}


def test_a_sync_reads_a_changed_key_by_name_or_arn_or_under_a_find_path() -> None:
    by_name = spec(data=[{"secretKey": "p", "remoteRef": {"key": "team-a/db"}}])
    by_arn = spec(data=[{"secretKey": "p", "remoteRef": {"key": ARN}}])
    by_find = spec(dataFrom=[{"find": {"path": "team-a/"}}])
    other = spec(data=[{"secretKey": "p", "remoteRef": {"key": "team-a/dbx"}}])
    changed = matching.names(ARN)
    assert matching.reads(by_name, changed, set())
    assert matching.reads(by_arn, {"team-a/db"}, set())
    assert matching.reads(by_find, changed, set())
    assert not matching.reads(other, changed, set())


def test_change_checks_watch_current_versions_only() -> None:
    s = spec(
        data=[
            {"secretKey": "a", "remoteRef": {"key": "k1"}},
            {"secretKey": "b", "remoteRef": {"key": "k2", "version": "AWSPREVIOUS"}},
        ],
        dataFrom=[{"extract": {"key": "k3"}}],
    )
    refs = changes.watched_refs(s)
    assert refs == [RemoteRef("k1"), RemoteRef("k3")]
    synced = {"k1": "v1", "k3": "v3"}
    assert not changes.moved(refs, synced, {RemoteRef("k1"): "v1", RemoteRef("k3"): "v3"})
    assert changes.moved(refs, synced, {RemoteRef("k1"): "v2", RemoteRef("k3"): "v3"})
    assert not changes.moved(refs, synced, {RemoteRef("k1"): "v1"}), "unknown: left to the timer"


def test_the_restart_annotation_depends_only_on_the_feeding_data() -> None:
    a = combined_hash(b"k", [("db", "h1"), ("cache", "h2")])
    assert a == combined_hash(b"k", [("cache", "h2"), ("db", "h1")])
    assert a != combined_hash(b"k", [("db", "h1"), ("cache", "h3")])


def test_a_sync_reads_a_document_object_by_its_kind_and_exact_name() -> None:
    by_data = spec(data=[{"secretKey": "p", "remoteRef": {"key": "configmap/docs/app.yaml"}}])
    by_extract = spec(dataFrom=[{"extract": {"key": "secret/docs/api.env"}}])
    assert matching.reads_document(by_data, "ConfigMap", "docs")
    assert not matching.reads_document(by_data, "Secret", "docs")  # another kind
    assert not matching.reads_document(by_data, "ConfigMap", "doc")  # a prefix of the name
    assert matching.reads_document(by_extract, "Secret", "docs")
    assert not matching.reads_document(by_extract, "ConfigMap", "docs")
