"""The command line parses what DESIGN.md promises and refuses the rest clearly."""

from __future__ import annotations

import argparse

import pytest

from secretsync import __main__ as cli
from secretsync import config
from secretsync.errors import ConfigError


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["run", *argv])


def test_run_defaults_to_all_namespaces_with_metrics_and_health() -> None:
    cfg = config.from_args(parse())
    assert cfg.clusterwide
    assert (cfg.metrics_port, cfg.health_port) == (8080, 8081)


def test_namespaces_can_be_repeated() -> None:
    cfg = config.from_args(parse("--namespace", "team-a", "--namespace", "team-b"))
    assert cfg.namespaces == ("team-a", "team-b")
    assert not cfg.clusterwide


def test_all_namespaces_and_namespace_exclude_each_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse("--all-namespaces", "--namespace", "team-a")
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["ops", "ops/", "/key"])
def test_webhook_secret_must_be_namespace_slash_name(value: str) -> None:
    with pytest.raises(ConfigError, match="--webhook-secret must be NAMESPACE/NAME"):
        config.from_args(parse("--webhook-secret", value))


def test_webhook_port_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match="--webhook-port needs --webhook-secret"):
        config.from_args(parse("--webhook-port", "8443"))


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("secretsync ")


def test_peering_names_the_group_and_defaults_to_standalone() -> None:
    assert config.from_args(parse()).peering is None
    assert config.from_args(parse("--peering", "secretsync")).peering == "secretsync"


@pytest.mark.parametrize("name", ["Secret_Sync", "ends-", "a" * 254])
def test_peering_name_must_be_an_object_name(name: str) -> None:
    with pytest.raises(ConfigError, match="--peering must name a KopfPeering object"):
        config.from_args(parse("--peering", name))


def test_a_replica_started_later_has_a_lower_peering_priority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # kopf pauses a replica that sees a live peer of higher priority: the oldest acts.
    monkeypatch.setattr("time.time_ns", lambda: 1_700_000_000_000_001_000)
    first = cli._peering_priority()
    monkeypatch.setattr("time.time_ns", lambda: 1_700_000_000_000_002_000)
    second = cli._peering_priority()
    assert second < first


def test_shards_are_off_by_default_and_exclude_peering() -> None:
    assert config.from_args(parse()).shards == 0
    cfg = config.from_args(parse("--shards", "12", "--shard-group", "prod"))
    assert (cfg.shards, cfg.shard_group) == (12, "prod")
    with pytest.raises(ConfigError, match="--shards and --peering exclude each other"):
        config.from_args(parse("--shards", "3", "--peering", "secretsync"))
    with pytest.raises(ConfigError, match="--shards must be between 0"):
        config.from_args(parse("--shards", "-1"))
    with pytest.raises(ConfigError, match="--shard-group must be"):
        config.from_args(parse("--shards", "3", "--shard-group", "Bad_Name"))
