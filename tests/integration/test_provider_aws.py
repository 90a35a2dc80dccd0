"""AWS-only behaviour of the AWS backend, against moto: the login paths, the endpoint rule,
error mapping, and the rule that no secret value ever reaches an exception.

Most cases use the environment's moto. Access denial needs IAM enforced, which
the shared moto does not do, so those cases run against a moto of their own
that enforces IAM once its users are set up. The cost of change checks is counted
on the wire, through the recording proxy in front of moto.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from harness.awsproxy import AwsRecordingProxy
from harness.devenv import AWS_REGION, DevEnv
from harness.faultproxy import Throttle
from harness.processes import Processes, free_port, http_ok
from harness.targets.aws import ACCOUNT, admin_secretsmanager, admin_ssm, dummy_token
from secretsync.errors import (
    AccessDeniedError,
    ProviderAuthError,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailableError,
    SecretNotFoundError,
)
from secretsync.models.remote import FindQuery, ObservingGate, RemoteRef, RemoteValue
from secretsync.models.store import AwsProvider, ProviderSpec
from secretsync.providers import registry
from secretsync.providers.aws import AwsBackend, AwsCredentials, listing
from secretsync.providers.aws import credentials as aws_credentials
from secretsync.providers.aws import errors as aws_errors
from secretsync.providers.aws.keys import AwsKeys, session_credentials
from secretsync.providers.base import LoginMaterial, SecretsClient, Session

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_ssm.type_defs import (
        DescribeParametersRequestTypeDef,
        GetParametersByPathRequestTypeDef,
    )

pytestmark = pytest.mark.integration

T = TypeVar("T")
Service = Literal["SecretsManager", "ParameterStore"]

ROLE = f"arn:aws:iam::{ACCOUNT}:role/secretsync-test-reader"
# A value that must never show up in an error message, a repr or a log line.
SENTINEL = "SENTINEL-d41d8cd98f00-value"


class Calls(ObservingGate):
    """A CallGate that remembers every (operation, outcome)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        super().__init__(lambda operation, outcome: self.seen.append((operation, outcome)))

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.seen if op == operation)


def spec(endpoint: str, service: Service = "SecretsManager", **fields: Any) -> AwsProvider:
    return AwsProvider(service=service, region=AWS_REGION, endpoint=endpoint, **fields)


def static_keys(key_id: str, secret: str, token: str | None = None) -> LoginMaterial:
    secrets = {"accessKeyId": key_id.encode(), "secretAccessKey": secret.encode()}
    if token is not None:
        secrets["sessionToken"] = token.encode()
    return LoginMaterial(secrets=secrets)


def login(provider: AwsProvider, material: LoginMaterial) -> Session:
    return asyncio.run(AwsBackend(provider).login(material))


def use(
    provider: AwsProvider,
    session: Session,
    run: Callable[[SecretsClient], Awaitable[T]],
    calls: Calls | None = None,
) -> T:
    """Run `run` with a client of the session, then close it."""

    async def go() -> T:
        client = AwsBackend(provider).client(session, calls if calls is not None else Calls())
        try:
            return await run(client)
        finally:
            await client.close()

    return asyncio.run(go())


def caller_arn(provider: AwsProvider, session: Session) -> str:
    """Who AWS thinks the session's credentials are (STS GetCallerIdentity)."""
    creds = session.credentials
    assert isinstance(creds, AwsCredentials)
    sts = boto3.client(
        "sts",
        endpoint_url=provider.endpoint,
        region_name=AWS_REGION,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
    )
    return str(sts.get_caller_identity()["Arn"])


@pytest.fixture(scope="module")
def endpoint(env: DevEnv) -> str:
    return env.aws_endpoint


@pytest.fixture(scope="module")
def sm(endpoint: str) -> SecretsManagerClient:
    """An admin Secrets Manager client, for seeding."""
    return admin_secretsmanager(endpoint)


@pytest.fixture(scope="module")
def ssm(endpoint: str) -> SSMClient:
    """An admin SSM client, for seeding."""
    return admin_ssm(endpoint)


@pytest.fixture
def prefix() -> str:
    return f"secretsync-aws-test/{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def seeded(sm: SecretsManagerClient, prefix: str) -> str:
    """A Secrets Manager secret holding SENTINEL."""
    key = prefix + "seeded"
    sm.create_secret(Name=key, SecretString=SENTINEL)
    return key


def read_one(provider: AwsProvider, session: Session, key: str) -> RemoteValue | ProviderError:
    return use(provider, session, lambda c: c.fetch([RemoteRef(key)]))[RemoteRef(key)]


# --- login --------------------------------------------------------------------------------


def test_web_identity_login_assumes_the_role_and_reads(endpoint: str, seeded: str) -> None:
    provider = spec(endpoint, role=ROLE)

    session = login(provider, LoginMaterial(service_account_token=dummy_token("team-a", "sync")))

    assert session.identity == ROLE
    assert session.expires_at is not None
    assert session.expires_at > time.time() + 60
    assert caller_arn(provider, session).endswith(
        ":assumed-role/secretsync-test-reader/secretsync-team-a.sync"
    )
    got = read_one(provider, session, seeded)
    assert isinstance(got, RemoteValue)
    assert got.value == SENTINEL.encode()


def test_web_identity_without_a_role_is_a_config_error(endpoint: str) -> None:
    with pytest.raises(ProviderConfigError, match=r"spec\.provider\.aws\.role"):
        login(spec(endpoint), LoginMaterial(service_account_token=dummy_token()))


def test_a_token_that_is_not_a_jwt_still_gets_a_valid_session_name(endpoint: str) -> None:
    provider = spec(endpoint, role=ROLE)

    session = login(provider, LoginMaterial(service_account_token="opaque token!"))

    assert caller_arn(provider, session).endswith("/secretsync-sa")


def test_static_keys_without_a_role_are_used_as_they_are(endpoint: str, seeded: str) -> None:
    provider = spec(endpoint)

    session = login(provider, static_keys("AKIASTATICKEY0000001", "static-secret\n"))

    assert session.identity == "static-keys:AKIASTATICKEY0000001"
    assert session.expires_at is None
    assert session.credentials == AwsCredentials(
        access_key_id="AKIASTATICKEY0000001", secret_access_key="static-secret"
    )
    assert isinstance(read_one(provider, session, seeded), RemoteValue)


def test_static_keys_with_a_role_assume_it(endpoint: str, seeded: str) -> None:
    provider = spec(endpoint, role=ROLE)

    session = login(provider, static_keys("AKIASTATICKEY0000002", "static-secret", "tok"))

    assert session.identity == ROLE
    assert session.expires_at is not None
    assert ":assumed-role/secretsync-test-reader/" in caller_arn(provider, session)
    assert isinstance(read_one(provider, session, seeded), RemoteValue)


def test_half_of_a_static_key_pair_is_a_config_error(endpoint: str) -> None:
    material = LoginMaterial(secrets={"accessKeyId": b"AKIAHALF"})

    with pytest.raises(ProviderConfigError, match="secretAccessKey"):
        login(spec(endpoint), material)


def test_additional_roles_are_assumed_in_order(endpoint: str) -> None:
    second = f"arn:aws:iam::{ACCOUNT}:role/second-hop"
    third = f"arn:aws:iam::{ACCOUNT}:role/third-hop"
    provider = spec(endpoint, role=ROLE, additional_roles=(second, third))

    session = login(provider, LoginMaterial(service_account_token=dummy_token()))

    assert session.identity == third
    assert ":assumed-role/third-hop/" in caller_arn(provider, session)


@pytest.fixture
def ambient(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An operator environment with no AWS configuration at all (no files, no IMDS)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def test_ambient_credentials_are_used_without_auth(
    endpoint: str, seeded: str, ambient: pytest.MonkeyPatch
) -> None:
    ambient.setenv("AWS_ACCESS_KEY_ID", "AKIAAMBIENT000000001")
    ambient.setenv("AWS_SECRET_ACCESS_KEY", "ambient-secret")
    provider = spec(endpoint)

    session = login(provider, LoginMaterial())

    assert session.identity == "ambient"
    assert session.expires_at is None
    assert isinstance(read_one(provider, session, seeded), RemoteValue)


def test_ambient_credentials_then_the_role(
    endpoint: str, seeded: str, ambient: pytest.MonkeyPatch
) -> None:
    ambient.setenv("AWS_ACCESS_KEY_ID", "AKIAAMBIENT000000002")
    ambient.setenv("AWS_SECRET_ACCESS_KEY", "ambient-secret")
    provider = spec(endpoint, role=ROLE)

    session = login(provider, LoginMaterial())

    assert session.identity == ROLE
    assert ":assumed-role/secretsync-test-reader/" in caller_arn(provider, session)
    assert isinstance(read_one(provider, session, seeded), RemoteValue)


def test_no_ambient_credentials_is_an_auth_error(
    endpoint: str, ambient: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ProviderAuthError, match="ambient"):
        login(spec(endpoint), LoginMaterial())


def test_the_endpoint_comes_from_the_spec_never_the_environment(
    endpoint: str, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.setenv(name, dead)
    provider = spec(endpoint, role=ROLE)

    session = login(provider, LoginMaterial(service_account_token=dummy_token()))

    assert isinstance(read_one(provider, session, seeded), RemoteValue)


def test_without_an_endpoint_in_the_spec_the_environments_is_ignored(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL_SSM"):
        monkeypatch.setenv(name, endpoint)
    provider = AwsProvider(service="ParameterStore", region=AWS_REGION)
    keys = aws_credentials.AwsCredentials(access_key_id="x", secret_access_key="x")

    ssm_url = aws_credentials.ssm_client(keys, provider).meta.endpoint_url
    sts_url = aws_credentials.sts_client(keys, provider).meta.endpoint_url

    assert ssm_url == f"https://ssm.{AWS_REGION}.amazonaws.com"
    assert sts_url == f"https://sts.{AWS_REGION}.amazonaws.com"


def test_secrets_stay_out_of_session_and_credential_reprs(endpoint: str) -> None:
    session = login(spec(endpoint), static_keys("AKIAREPR", SENTINEL, SENTINEL + "-token"))

    assert SENTINEL not in repr(session)
    assert SENTINEL not in repr(session.credentials)
    assert "AKIAREPR" in repr(session.credentials)


# --- unreachable endpoint -----------------------------------------------------------------


def test_an_unreachable_endpoint_is_unavailable_and_reported(prefix: str) -> None:
    provider = spec(f"http://127.0.0.1:{free_port()}")
    session = login(provider, static_keys("AKIADEAD", "dead"))
    calls = Calls()
    refs = [RemoteRef(prefix + "a"), RemoteRef(prefix + "b")]

    with pytest.raises(ProviderUnavailableError, match="BatchGetSecretValue"):
        use(provider, session, lambda c: c.fetch(refs), calls)

    assert calls.seen == [("BatchGetSecretValue", "error")]
    with pytest.raises(ProviderUnavailableError, match="GetCallerIdentity"):
        use(provider, session, lambda c: c.validate())


def test_login_against_an_unreachable_sts_is_unavailable() -> None:
    provider = spec(f"http://127.0.0.1:{free_port()}", role=ROLE)

    with pytest.raises(ProviderUnavailableError, match="AssumeRoleWithWebIdentity"):
        login(provider, LoginMaterial(service_account_token=dummy_token()))


def test_an_unusable_endpoint_or_region_is_a_config_error() -> None:
    token = LoginMaterial(service_account_token=dummy_token())
    keys = static_keys("AKIACONFIG", "config")

    with pytest.raises(ProviderConfigError, match="endpoint"):
        login(
            AwsProvider(service="SecretsManager", region=AWS_REGION, endpoint="no url", role=ROLE),
            token,
        )
    bad_region = AwsProvider(service="ParameterStore", region="eu west 1!")
    session = login(bad_region, keys)  # static keys need no call at login
    with pytest.raises(ProviderConfigError, match="region"):
        use(bad_region, session, lambda c: c.fetch([RemoteRef("/x")]))


# --- Secrets Manager ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sm_reader(endpoint: str) -> tuple[AwsProvider, Session]:
    provider = spec(endpoint, role=ROLE)
    return provider, login(provider, LoginMaterial(service_account_token=dummy_token()))


def test_keys_may_be_names_full_arns_or_partial_arns(
    sm: SecretsManagerClient, prefix: str, sm_reader: tuple[AwsProvider, Session]
) -> None:
    name = prefix + "by-arn"
    arn = sm.create_secret(Name=name, SecretString="v")["ARN"]
    partial = arn.rsplit("-", 1)[0]
    refs = [RemoteRef(name), RemoteRef(arn), RemoteRef(partial)]
    calls = Calls()

    got = use(*sm_reader, lambda c: c.fetch(refs), calls)

    assert [getattr(got[ref], "value", None) for ref in refs] == [b"v", b"v", b"v"]
    assert calls.seen == [("BatchGetSecretValue", "success")]


def test_staging_labels_and_version_ids_select_versions(
    sm: SecretsManagerClient, prefix: str, sm_reader: tuple[AwsProvider, Session]
) -> None:
    key = prefix + "staged"
    first = sm.create_secret(Name=key, SecretString="one")["VersionId"]
    second = sm.put_secret_value(SecretId=key, SecretString="two")["VersionId"]
    sm.update_secret_version_stage(SecretId=key, VersionStage="blue", MoveToVersionId=first)
    refs = {
        "AWSCURRENT": b"two",
        "AWSPREVIOUS": b"one",
        "blue": b"one",
        first: b"one",
        second: b"two",
    }

    got = use(*sm_reader, lambda c: c.fetch([RemoteRef(key, v) for v in refs]))

    assert {v: getattr(got[RemoteRef(key, v)], "value", None) for v in refs} == refs
    assert getattr(got[RemoteRef(key, "blue")], "version", None) == first


def test_a_secret_scheduled_for_deletion_is_not_found(
    sm: SecretsManagerClient, prefix: str, sm_reader: tuple[AwsProvider, Session]
) -> None:
    key = prefix + "deleted"
    version = sm.create_secret(Name=key, SecretString=SENTINEL)["VersionId"]
    sm.delete_secret(SecretId=key, RecoveryWindowInDays=7)
    refs = [RemoteRef(key), RemoteRef(key, version)]

    got = use(*sm_reader, lambda c: c.fetch(refs))

    assert all(isinstance(got[ref], SecretNotFoundError) for ref in refs), got
    assert all(SENTINEL not in str(got[ref]) + repr(got[ref]) for ref in refs)


def test_versions_leave_out_missing_secrets_and_answer_pinned_ids_without_a_call(
    sm: SecretsManagerClient, prefix: str, sm_reader: tuple[AwsProvider, Session]
) -> None:
    key = prefix + "described"
    first = sm.create_secret(Name=key, SecretString="a")["VersionId"]
    current = sm.put_secret_value(SecretId=key, SecretString="b")["VersionId"]
    refs = [
        RemoteRef(key),
        RemoteRef(key, "AWSPREVIOUS"),
        RemoteRef(key, first),
        RemoteRef(prefix + "missing"),
    ]
    calls = Calls()

    got = use(*sm_reader, lambda c: c.versions(refs), calls)

    assert got == {refs[0]: current, refs[1]: first, refs[2]: first}
    assert calls.seen == [("ListSecrets", "success")]  # one listing answers for both names


def test_find_by_tags_matches_key_and_value_together(
    sm: SecretsManagerClient, prefix: str, sm_reader: tuple[AwsProvider, Session]
) -> None:
    sm.create_secret(
        Name=prefix + "prod",
        SecretString="v",
        Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "a"}],
    )
    # Has the key "env" and the value "prod", but not as one tag.
    sm.create_secret(
        Name=prefix + "crossed",
        SecretString="v",
        Tags=[{"Key": "env", "Value": "dev"}, {"Key": "tier", "Value": "prod"}],
    )
    sm.create_secret(Name=prefix + "untagged", SecretString="v")

    def found(query: FindQuery) -> list[str]:
        return [r.key for r in use(*sm_reader, lambda c: c.find(query))]

    assert found(FindQuery(path=prefix, tags=(("env", "prod"),))) == [prefix + "prod"]
    assert found(FindQuery(path=prefix, tags=(("env", "prod"), ("team", "a")))) == [prefix + "prod"]
    assert found(FindQuery(path=prefix, tags=(("env", "prod"), ("env", "dev")))) == []
    assert found(FindQuery(path=prefix, name_regexp="prod|crossed")) == [
        prefix + "crossed",
        prefix + "prod",
    ]


def test_find_by_name_regexp_alone_searches_the_whole_account(
    sm: SecretsManagerClient, prefix: str, sm_reader: tuple[AwsProvider, Session]
) -> None:
    for name in ("db-a", "db-b", "other"):
        sm.create_secret(Name=prefix + name, SecretString="v")

    refs = use(*sm_reader, lambda c: c.find(FindQuery(name_regexp=f"^{prefix}db-")))

    assert [r.key for r in refs] == [prefix + "db-a", prefix + "db-b"]


def test_an_invalid_regexp_is_a_config_error(sm_reader: tuple[AwsProvider, Session]) -> None:
    with pytest.raises(ProviderConfigError, match="regexp"):
        use(*sm_reader, lambda c: c.find(FindQuery(name_regexp="(unclosed")))


# --- change checks: versions() counted on the wire ----------------------------------------


@pytest.fixture(scope="module")
def sm_recorded(aws: AwsRecordingProxy) -> tuple[AwsProvider, Session]:
    """A Secrets Manager reader whose every call goes through the recording proxy."""
    provider = spec(aws.url, role=ROLE)
    return provider, login(provider, LoginMaterial(service_account_token=dummy_token()))


@pytest.fixture(scope="module")
def ssm_recorded(aws: AwsRecordingProxy) -> tuple[AwsProvider, Session]:
    """A Parameter Store reader whose every call goes through the recording proxy."""
    provider = spec(aws.url, "ParameterStore", role=ROLE)
    return provider, login(provider, LoginMaterial(service_account_token=dummy_token()))


def on_the_wire(
    proxy: AwsRecordingProxy, session: Session, run: Callable[[], T]
) -> tuple[T, Counter[str]]:
    """What `run` returns, and the actions the session's credentials sent meanwhile."""
    creds = session.credentials
    assert isinstance(creds, AwsCredentials)
    since = time.monotonic()
    result = run()
    sent = proxy.select(since=since, identity=creds.access_key_id)
    return result, Counter(call.action for call in sent)


def create_secrets(sm: SecretsManagerClient, names: list[str]) -> dict[str, str]:
    """Each new secret's first version id, by name."""
    return {name: sm.create_secret(Name=name, SecretString="v")["VersionId"] for name in names}


def test_versions_of_500_secrets_under_10_prefixes_take_5_listings_and_no_describe(
    sm: SecretsManagerClient,
    prefix: str,
    aws: AwsRecordingProxy,
    sm_recorded: tuple[AwsProvider, Session],
) -> None:
    names = [f"{prefix}team-{team}/key-{i:03d}" for team in range(10) for i in range(50)]
    expected = create_secrets(sm, names)
    # Neighbours nobody watches: the listings' prefixes must leave them out.
    create_secrets(sm, [f"{prefix}team-1-old/key-{i:03d}" for i in range(150)])
    refs = [RemoteRef(name) for name in names]
    calls = Calls()

    got, sent = on_the_wire(
        aws, sm_recorded[1], lambda: use(*sm_recorded, lambda c: c.versions(refs), calls)
    )

    assert got == {RemoteRef(name): version for name, version in expected.items()}
    # ceil(500/100) = 5 calls, where DescribeSecret took 500: 100 times fewer.
    assert sent == {"ListSecrets": 5}, sent
    assert calls.seen == [("ListSecrets", "success")] * 5  # every call went through the gate


def test_versions_answer_stages_arns_version_ids_and_missing_keys_each_their_way(
    sm: SecretsManagerClient,
    prefix: str,
    aws: AwsRecordingProxy,
    sm_recorded: tuple[AwsProvider, Session],
) -> None:
    key = prefix + "staged"
    first = sm.create_secret(Name=key, SecretString="one")["VersionId"]
    current = sm.put_secret_value(SecretId=key, SecretString="two")["VersionId"]
    sm.update_secret_version_stage(SecretId=key, VersionStage="blue", MoveToVersionId=first)
    created = sm.create_secret(Name=prefix + "by-arn", SecretString="v")
    arn, other = created["ARN"], created["VersionId"]
    partial = arn.rsplit("-", 1)[0]
    deleted_arn = sm.create_secret(Name=prefix + "deleted", SecretString="v")["ARN"]
    sm.delete_secret(SecretId=prefix + "deleted", RecoveryWindowInDays=7)
    answered = {
        RemoteRef(key): current,
        RemoteRef(key, "AWSCURRENT"): current,
        RemoteRef(key, "AWSPREVIOUS"): first,
        RemoteRef(key, "blue"): first,  # any staging label: the listing shows them all
        RemoteRef(key, first): first,  # a version id: its own answer
        RemoteRef(arn): other,
        RemoteRef(partial): other,
    }
    left_out = [
        RemoteRef(prefix + "missing"),
        RemoteRef(key, "no-such-stage"),
        RemoteRef(prefix + "deleted"),  # scheduled for deletion: fetch() says not found
        RemoteRef(deleted_arn),
        RemoteRef(prefix + "not a name!"),  # no name the filter takes: DescribeSecret's
        RemoteRef(arn + "x"),
    ]

    got, sent = on_the_wire(
        aws, sm_recorded[1], lambda: use(*sm_recorded, lambda c: c.versions([*answered, *left_out]))
    )

    assert got == answered
    # One listing for every name; DescribeSecret only for the ARNs and the odd name.
    assert sent == {"ListSecrets": 1, "DescribeSecret": 5}, sent


def test_a_rotated_secret_shows_its_new_current_version(
    sm: SecretsManagerClient, prefix: str, sm_reader: tuple[AwsProvider, Session]
) -> None:
    key = prefix + "rotated"
    first = sm.create_secret(Name=key, SecretString="one")["VersionId"]
    ref = RemoteRef(key)

    def current() -> str | None:
        return use(*sm_reader, lambda c: c.versions([ref])).get(ref)

    before = current()
    second = sm.put_secret_value(SecretId=key, SecretString="two")["VersionId"]
    rotated = current()
    # A roll back moves the label alone, to a version that already existed.
    sm.update_secret_version_stage(
        SecretId=key, VersionStage="AWSCURRENT", MoveToVersionId=first, RemoveFromVersionId=second
    )
    rolled_back = current()

    assert (before, rotated, rolled_back) == (first, second, first)


def test_a_prefix_shared_with_many_other_secrets_gives_way_to_exact_listings(
    sm: SecretsManagerClient,
    prefix: str,
    aws: AwsRecordingProxy,
    sm_recorded: tuple[AwsProvider, Session],
) -> None:
    # 20 watched names that differ right after the prefix (one filter value for all of
    # them is "prefix"), which also holds 600 secrets nobody watches, created first so
    # that moto lists them first.
    create_secrets(sm, [f"{prefix}zz-{i:03d}" for i in range(600)])
    expected = create_secrets(sm, [f"{prefix}{letter}0" for letter in "abcdefghijklmnopqrst"])
    refs = [RemoteRef(name) for name in expected]

    got, sent = on_the_wire(
        aws, sm_recorded[1], lambda: use(*sm_recorded, lambda c: c.versions(refs))
    )

    assert got == {RemoteRef(name): version for name, version in expected.items()}
    # The broad listing gives up after its budget (2 pages: what 2 exact listings cost)
    # instead of reading all 7 pages; 2 exact listings then answer.
    assert sent == {"ListSecrets": 4}, sent


def test_a_name_that_begins_hundreds_of_others_is_described_after_one_page(
    sm: SecretsManagerClient,
    prefix: str,
    aws: AwsRecordingProxy,
    sm_recorded: tuple[AwsProvider, Session],
) -> None:
    create_secrets(sm, [f"{prefix}app-{i:03d}" for i in range(300)])  # listed first by moto
    expected = create_secrets(sm, [prefix + "app"])
    ref = RemoteRef(prefix + "app")

    got, sent = on_the_wire(
        aws, sm_recorded[1], lambda: use(*sm_recorded, lambda c: c.versions([ref]))
    )

    assert got == {ref: expected[ref.key]}
    # The exact listing's budget is what DescribeSecret would cost: one page, not four.
    assert sent == {"ListSecrets": 1, "DescribeSecret": 1}, sent


def test_versions_raise_an_outage_of_the_listing(
    prefix: str, aws: AwsRecordingProxy, sm_recorded: tuple[AwsProvider, Session]
) -> None:
    with aws.inject(Throttle(), action="ListSecrets"), pytest.raises(ProviderUnavailableError):
        use(*sm_recorded, lambda c: c.versions([RemoteRef(prefix + "any")]))


# A secret name as the name filter takes it (secretsmanager._FILTER_VALUE).
_FILTER_VALUE = re.compile(r"^[a-zA-Z0-9 :_@/+=.\-]{1,512}$")


def _scrambled(seed: int) -> str:
    """A name of no structure (hex digits, some of them turned into separators)."""
    digest = hashlib.sha256(str(seed).encode()).hexdigest()[:9]
    return digest.replace("e", "/").replace("f", "-")


@pytest.mark.parametrize(
    "names",
    [
        [f"team-{t}/key-{i:03d}" for t in range(10) for i in range(50)],
        [f"svc-{i:03d}/db" for i in range(1000)],
        ["db", "db-old", "db-old-2", "a", "ab", "abc", "b"],
        [f"team-{s * 7919 % 41}/app-{s % 17}/db-{s}" for s in range(700)],
        [_scrambled(s) for s in range(400)],
    ],
    ids=["dirs", "flat", "nested", "tree", "random"],
)
def test_a_listing_plan_covers_each_name_once_with_10_prefixes_a_query(names: list[str]) -> None:
    plans = listing.broad(names)

    assert sorted(name for plan in plans for name in plan.names) == sorted(set(names))
    for plan in plans:
        assert 1 <= len(plan.prefixes) <= listing.FILTER_VALUES
        assert all(_FILTER_VALUE.match(p) for p in plan.prefixes)
        assert all(any(n.startswith(p) for p in plan.prefixes) for n in plan.names)
        others = set(names) - plan.names
        # No prefix reaches into another query, unless a name begins another one.
        stray = {n for n in others if any(n.startswith(p) for p in plan.prefixes)}
        assert all(any(n.startswith(m) for m in plan.names) for n in stray), stray
    pages = sum(-(-len(plan.names) // listing.PAGE_SIZE) for plan in plans)
    assert pages <= -(-len(set(names)) // listing.PAGE_SIZE) + 2, pages


def test_a_listing_plan_for_500_names_under_10_prefixes_is_5_queries_of_a_page() -> None:
    names = [f"team-{t}/key-{i:03d}" for t in range(10) for i in range(50)]

    plans = listing.broad(names)

    assert [len(plan.names) for plan in plans] == [100] * 5
    assert plans[0].prefixes == tuple(f"team-{t}/key-0{d}" for t in (0, 1) for d in range(5))
    assert all(not plan.exact and plan.budget == 10 for plan in plans)


def test_a_few_names_are_listed_exactly() -> None:
    plans = listing.broad(["b/x", "a/y", "a/z"])

    assert plans == [
        listing.Listing(
            prefixes=("a/y", "a/z", "b/x"),
            names=frozenset({"a/y", "a/z", "b/x"}),
            budget=3,
            exact=True,
        )
    ]


# --- Parameter Store ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ssm_reader(endpoint: str) -> tuple[AwsProvider, Session]:
    provider = spec(endpoint, "ParameterStore", role=ROLE)
    return provider, login(provider, LoginMaterial(service_account_token=dummy_token()))


@pytest.fixture
def ssm_prefix() -> str:
    return f"/secretsync-aws-test/{uuid.uuid4().hex[:12]}/"


def test_one_parameter_at_several_versions_in_one_fetch(
    ssm: SSMClient, ssm_prefix: str, ssm_reader: tuple[AwsProvider, Session]
) -> None:
    key = ssm_prefix + "multi"
    for value in ("v1", "v2", "v3"):
        ssm.put_parameter(Name=key, Value=value, Type="SecureString", Overwrite=True)
    ssm.label_parameter_version(Name=key, ParameterVersion=1, Labels=["stable"])
    refs = {None: b"v3", "1": b"v1", "2": b"v2", "stable": b"v1"}

    got = use(*ssm_reader, lambda c: c.fetch([RemoteRef(key, v) for v in refs]))

    assert {v: getattr(got[RemoteRef(key, v)], "value", None) for v in refs} == refs
    assert getattr(got[RemoteRef(key, "stable")], "version", None) == "1"


def test_parameter_versions_follow_labels_and_skip_calls_for_numbers(
    ssm: SSMClient, ssm_prefix: str, ssm_reader: tuple[AwsProvider, Session]
) -> None:
    key = ssm_prefix + "labelled"
    for value in ("v1", "v2"):
        ssm.put_parameter(Name=key, Value=value, Type="SecureString", Overwrite=True)
    ssm.label_parameter_version(Name=key, ParameterVersion=1, Labels=["stable"])
    labelled, pinned, missing = RemoteRef(key, "stable"), RemoteRef(key, "2"), RemoteRef(key + "x")

    calls = Calls()
    before = use(*ssm_reader, lambda c: c.versions([labelled, pinned, missing]), calls)
    ssm.label_parameter_version(Name=key, ParameterVersion=2, Labels=["stable"])
    after = use(*ssm_reader, lambda c: c.versions([labelled]))

    assert before == {labelled: "1", pinned: "2"}
    assert calls.seen == [("GetParameters", "success")]
    assert after == {labelled: "2"}


def test_parameter_find_by_tags_and_by_a_flat_prefix(
    ssm: SSMClient, ssm_prefix: str, ssm_reader: tuple[AwsProvider, Session]
) -> None:
    def put(name: str, tags: dict[str, str]) -> None:
        ssm.put_parameter(
            Name=name,
            Value="v",
            Type="SecureString",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )

    put(ssm_prefix + "prod", {"env": "prod"})
    put(ssm_prefix + "dev", {"env": "dev"})
    flat = f"secretsync-flat-{uuid.uuid4().hex[:8]}-"  # names without a hierarchy
    put(flat + "a", {"env": "prod"})
    put(flat + "b", {})

    def found(query: FindQuery) -> list[str]:
        return [r.key for r in use(*ssm_reader, lambda c: c.find(query))]

    assert found(FindQuery(path=ssm_prefix, tags=(("env", "prod"),))) == [ssm_prefix + "prod"]
    assert found(FindQuery(path=flat)) == [flat + "a", flat + "b"]
    assert found(FindQuery(path=flat, tags=(("env", "prod"),))) == [flat + "a"]
    assert found(FindQuery(path=ssm_prefix, tags=(("env", "prod"), ("env", "dev")))) == []


def test_a_missing_parameter_version_is_not_found(
    ssm: SSMClient, ssm_prefix: str, ssm_reader: tuple[AwsProvider, Session]
) -> None:
    key = ssm_prefix + "one"
    ssm.put_parameter(Name=key, Value=SENTINEL, Type="SecureString")
    refs = [RemoteRef(key, "7"), RemoteRef(key, "no-such-label"), RemoteRef(key)]

    got = use(*ssm_reader, lambda c: c.fetch(refs))

    assert isinstance(got[refs[0]], SecretNotFoundError)
    assert isinstance(got[refs[1]], SecretNotFoundError)
    assert getattr(got[refs[2]], "value", None) == SENTINEL.encode()
    assert SENTINEL not in str(got[refs[0]]) + repr(got[refs[1]]) + repr(got[refs[2]])


def _pages(first: Callable[[str | None], dict[str, Any]]) -> int:
    """How many pages a paginated SSM call takes, following NextToken to the end."""
    pages, token = 0, None
    while True:
        pages += 1
        token = first(token).get("NextToken")
        if not token:
            return pages


def test_parameter_versions_of_500_under_10_paths_take_50_calls_the_fewest_measured(
    ssm: SSMClient,
    ssm_prefix: str,
    aws: AwsRecordingProxy,
    ssm_recorded: tuple[AwsProvider, Session],
) -> None:
    paths = [f"{ssm_prefix}app-{p}/" for p in range(10)]
    names = [f"{path}key-{i:02d}" for path in paths for i in range(50)]
    for name in names:
        ssm.put_parameter(Name=name, Value="v", Type="SecureString")
    refs = [RemoteRef(name) for name in names]

    got, sent = on_the_wire(
        aws, ssm_recorded[1], lambda: use(*ssm_recorded, lambda c: c.versions(refs))
    )

    assert got == dict.fromkeys(refs, "1")
    assert sent == {"GetParameters": 50}, sent  # ceil(500/10)
    # The listings, measured on the same parameters: none takes fewer calls on moto
    # (which pages DescribeParameters by 10 whatever MaxResults says), so versions()
    # keeps GetParameters; see docs/design/0007-change-checks.md.
    lister = boto3.Session(
        region_name=AWS_REGION, aws_access_key_id="AKIAMEASURE", aws_secret_access_key="x"
    ).client("ssm", endpoint_url=aws.url)

    def describe(option: str, values: list[str]) -> Callable[[str | None], dict[str, Any]]:
        def page(token: str | None) -> dict[str, Any]:
            request: DescribeParametersRequestTypeDef = {
                "ParameterFilters": [{"Key": "Name", "Option": option, "Values": values}],
                "MaxResults": 50,
            }
            if token:
                request["NextToken"] = token
            return dict(lister.describe_parameters(**request))

        return page

    def by_path(path: str) -> Callable[[str | None], dict[str, Any]]:
        def page(token: str | None) -> dict[str, Any]:
            request: GetParametersByPathRequestTypeDef = {
                "Path": path.rstrip("/"),
                "Recursive": True,
                "WithDecryption": False,
                "MaxResults": 10,
            }
            if token:
                request["NextToken"] = token
            return dict(lister.get_parameters_by_path(**request))

        return page

    measured = {
        "DescribeParameters Equals, 50 names a query": sum(
            _pages(describe("Equals", names[at : at + 50])) for at in range(0, len(names), 50)
        ),
        "DescribeParameters BeginsWith the 10 paths": _pages(describe("BeginsWith", paths)),
        "GetParametersByPath, each path": sum(_pages(by_path(path)) for path in paths),
    }
    assert all(calls >= sent["GetParameters"] for calls in measured.values()), measured
    assert measured == {
        "DescribeParameters Equals, 50 names a query": 60,
        "DescribeParameters BeginsWith the 10 paths": 51,
        "GetParametersByPath, each path": 60,
    }


# --- error mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ResourceNotFoundException", 400, SecretNotFoundError),
        ("ParameterNotFound", 400, SecretNotFoundError),
        ("ParameterVersionNotFound", 400, SecretNotFoundError),
        ("AccessDeniedException", 400, AccessDeniedError),
        ("AccessDenied", 403, AccessDeniedError),
        ("UnrecognizedClientException", 400, ProviderAuthError),
        ("InvalidClientTokenId", 403, ProviderAuthError),
        ("ExpiredTokenException", 400, ProviderAuthError),
        ("InvalidIdentityToken", 400, ProviderAuthError),
        ("ThrottlingException", 400, ProviderUnavailableError),
        ("TooManyRequestsException", 400, ProviderUnavailableError),
        ("InternalServiceError", 500, ProviderUnavailableError),
        ("SomethingNew", 503, ProviderUnavailableError),
        ("ValidationException", 400, ProviderConfigError),
        ("InvalidParameterException", 400, ProviderConfigError),
        ("DecryptionFailure", 400, ProviderError),
    ],
)
def test_client_errors_map_by_code_with_our_own_message(
    code: str, status: int, expected: type[ProviderError]
) -> None:
    # botocore's TypedDict wants every metadata field; a real response may carry fewer.
    response: Any = {
        "Error": {"Code": code, "Message": f"the value {SENTINEL} was rejected"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    exc = ClientError(response, "GetSecretValue")

    error = aws_errors.translate(exc, operation="GetSecretValue", key="team-a/db")

    assert type(error) is expected
    assert "GetSecretValue" in str(error)
    assert "'team-a/db'" in str(error)
    assert code in str(error)
    assert SENTINEL not in str(error) + repr(error)


def test_an_unparsed_error_body_is_read_for_its_code_only() -> None:
    # What botocore makes of an XML error body on a JSON API (moto enforcing IAM does this).
    body = f"<ErrorResponse><Error><Code>AccessDenied</Code><Message>{SENTINEL}</Message>"
    response: Any = {
        "Error": {"Code": "403", "Message": body},
        "ResponseMetadata": {"HTTPStatusCode": 403},
    }

    error = aws_errors.translate(ClientError(response, "X"), operation="DescribeSecret", key="k")

    assert type(error) is AccessDeniedError
    assert SENTINEL not in str(error)


def test_a_bare_refusal_is_an_auth_error_never_not_found() -> None:
    for status, expected in ((403, ProviderAuthError), (404, ProviderError)):
        response: Any = {
            "Error": {"Code": str(status), "Message": "<html>proxy says no</html>"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

        error = aws_errors.translate(ClientError(response, "X"), operation="X", key="k")

        assert type(error) is expected


def test_transport_failures_are_unavailable() -> None:
    exc = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    error = aws_errors.translate(exc, operation="GetParameters", key=None)

    assert isinstance(error, ProviderUnavailableError)
    assert "EndpointConnectionError" in str(error)


def test_an_error_code_cannot_smuggle_text_into_the_message() -> None:
    error = aws_errors.for_code("x" * 100 + ' "quoted" <b>\n', operation="X", key="k")

    code = str(error).rsplit("(", 1)[1].rstrip(")")
    assert code == "x" * 64


def test_raised_errors_keep_no_link_to_the_sdk_exception(
    sm: SecretsManagerClient, prefix: str, sm_reader: tuple[AwsProvider, Session]
) -> None:
    key = prefix + "linked"
    sm.create_secret(Name=key, SecretString=SENTINEL)

    got = use(*sm_reader, lambda c: c.fetch([RemoteRef(key, "no-such-stage")]))
    error = got[RemoteRef(key, "no-such-stage")]

    assert isinstance(error, SecretNotFoundError)
    assert error.__cause__ is None
    assert error.__context__ is None


# --- registry -----------------------------------------------------------------------------


def test_the_registry_builds_the_aws_backend(endpoint: str) -> None:
    backend = registry.backend_for(ProviderSpec(aws=spec(endpoint)))

    assert isinstance(backend, AwsBackend)
    assert backend.name == "aws"


def test_the_registry_refuses_a_spec_without_a_provider() -> None:
    with pytest.raises(
        ProviderConfigError, match=r"spec\.provider: set exactly one of aws, vault, sops or plugin"
    ):
        registry.backend_for(ProviderSpec())


def test_a_session_from_another_backend_is_refused(endpoint: str) -> None:
    foreign = Session(identity="vault:kubernetes/x", expires_at=None, credentials="token")

    with pytest.raises(ProviderConfigError, match="not made by the aws backend"):
        AwsBackend(spec(endpoint)).client(foreign, Calls())


# --- access denied, with IAM enforced ----------------------------------------------------------


class IamMoto:
    """A moto of this module's own that enforces IAM, with a reader, a nobody and a
    describer user."""

    def __init__(
        self,
        endpoint: str,
        reader: LoginMaterial,
        nobody: LoginMaterial,
        describer: LoginMaterial,  # may describe and read secrets, not list them
        kms_key: str,
        data_key: tuple[bytes, bytes],  # (plaintext, KMS ciphertext blob), as sops keeps one
    ) -> None:
        self.endpoint = endpoint
        self.reader = reader
        self.nobody = nobody
        self.describer = describer
        self.kms_key = kms_key
        self.data_key = data_key


def _user(iam: Any, name: str, actions: list[str]) -> LoginMaterial:
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="access",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return static_keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def iam_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamMoto]:
    procs = Processes(tmp_path_factory.mktemp("iam-moto"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto_server = str(Path(sys.executable).parent / "moto_server")
    started = procs.start("moto", [moto_server, "-H", "127.0.0.1", "-p", str(port)])
    try:
        procs.wait_ready(
            started, lambda: http_ok(f"{endpoint}/moto-api/data.json"), timeout=60, what="answering"
        )
        admin = boto3.Session(
            region_name=AWS_REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        iam = admin.client("iam", endpoint_url=endpoint)
        reader = _user(iam, "reader", ["secretsmanager:*", "ssm:*", "kms:Decrypt"])
        nobody = _user(iam, "nobody", ["sts:GetCallerIdentity"])
        describer = _user(
            iam, "describer", ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
        )
        admin.client("secretsmanager", endpoint_url=endpoint).create_secret(
            Name="guarded/db", SecretString=SENTINEL
        )
        admin.client("ssm", endpoint_url=endpoint).put_parameter(
            Name="/guarded/db", Value=SENTINEL, Type="SecureString"
        )
        kms = admin.client("kms", endpoint_url=endpoint)
        kms_key = kms.create_key(Description="sops documents")["KeyMetadata"]["Arn"]
        data_key = kms.generate_data_key(
            KeyId=kms_key, NumberOfBytes=32, EncryptionContext={"team": "a"}
        )
        iam.create_role(
            RoleName="guarded",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "sts:AssumeRole",
                            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                        }
                    ],
                }
            ),
        )
        # From now on every request is authenticated and authorised.
        reset = urllib.request.Request(  # noqa: S310 - the loopback moto started above
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            # Not a form: moto reads the raw body, which Werkzeug empties for form posts.
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310
        yield IamMoto(
            endpoint,
            reader,
            nobody,
            describer,
            kms_key,
            (data_key["Plaintext"], data_key["CiphertextBlob"]),
        )
    finally:
        procs.stop_all()


@pytest.mark.parametrize(
    ("service", "key"), [("SecretsManager", "guarded/db"), ("ParameterStore", "/guarded/db")]
)
def test_a_reader_may_read_and_nobody_is_denied(
    iam_moto: IamMoto, service: Service, key: str
) -> None:
    provider = spec(iam_moto.endpoint, service)
    reader = login(provider, iam_moto.reader)
    nobody = login(provider, iam_moto.nobody)
    calls = Calls()

    allowed = read_one(provider, reader, key)
    denied = use(provider, nobody, lambda c: c.fetch([RemoteRef(key)]), calls)[RemoteRef(key)]
    versions = use(provider, nobody, lambda c: c.versions([RemoteRef(key)]))

    assert isinstance(allowed, RemoteValue)
    assert allowed.value == SENTINEL.encode()
    assert isinstance(denied, AccessDeniedError)
    assert SENTINEL not in str(denied) + repr(denied)
    assert [outcome for _, outcome in calls.seen] == ["error"]
    assert versions == {}  # left for fetch() to report per ref
    use(provider, nobody, lambda c: c.validate())  # the identity itself is fine


def test_a_sops_data_key_is_decrypted_by_a_role_granted_kms_decrypt_and_refused_to_others(
    iam_moto: IamMoto,
) -> None:
    """The SOPS provider's KMS side (providers/aws/keys.py) with IAM enforced: least
    privilege is the identity's policy, not the document's say."""
    provider = spec(iam_moto.endpoint)
    plaintext, blob = iam_moto.data_key

    def decrypt(material: LoginMaterial, context: dict[str, str]) -> bytes:
        session = login(provider, material)

        async def run() -> bytes:
            keys = AwsKeys(spec=provider, credentials=session_credentials(session), gate=Calls())
            try:
                return await keys.decrypt(blob, key_arn=iam_moto.kms_key, context=context, what="d")
            finally:
                await keys.close()

        return asyncio.run(run())

    assert decrypt(iam_moto.reader, {"team": "a"}) == plaintext
    with pytest.raises(AccessDeniedError) as denied:
        decrypt(iam_moto.nobody, {"team": "a"})
    assert plaintext.hex() not in str(denied.value)
    # The encryption context is part of what was encrypted: another one is refused.
    with pytest.raises(ProviderError) as wrong:
        decrypt(iam_moto.reader, {"team": "b"})
    assert not isinstance(wrong.value, AccessDeniedError)


def test_without_list_secrets_versions_fall_back_to_describe_secret_and_stop_asking(
    iam_moto: IamMoto,
) -> None:
    provider = spec(iam_moto.endpoint)
    session = login(provider, iam_moto.describer)
    calls = Calls()
    ref = RemoteRef("guarded/db")

    async def twice(client: SecretsClient) -> list[Mapping[RemoteRef, str]]:
        return [await client.versions([ref]), await client.versions([ref])]

    first, second = use(provider, session, twice, calls)

    assert first == second
    assert set(first) == {ref}
    # Refused once: the same client asks DescribeSecret straight away from then on.
    assert calls.seen == [
        ("ListSecrets", "error"),
        ("DescribeSecret", "success"),
        ("DescribeSecret", "success"),
    ]


def test_assuming_a_role_without_permission_is_denied_at_login(iam_moto: IamMoto) -> None:
    provider = spec(iam_moto.endpoint, role=f"arn:aws:iam::{ACCOUNT}:role/guarded")

    with pytest.raises(AccessDeniedError, match="AssumeRole"):
        login(provider, iam_moto.nobody)


def test_unknown_keys_are_an_auth_error_raised_for_the_whole_call(iam_moto: IamMoto) -> None:
    provider = spec(iam_moto.endpoint)
    session = login(provider, static_keys("AKIAUNKNOWN000000000", "wrong"))

    # Not a property of the key: raised, so that the engine logs in again.
    with pytest.raises(ProviderAuthError) as raised:
        read_one(provider, session, "guarded/db")
    assert type(raised.value) is ProviderAuthError
    with pytest.raises(ProviderAuthError):
        use(provider, session, lambda c: c.validate())
    with pytest.raises(ProviderAuthError):
        use(provider, session, lambda c: c.versions([RemoteRef("guarded/db")]))
