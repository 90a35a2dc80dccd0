"""AWS Secrets Manager behind the SecretsClient protocol."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from secretsync.errors import AccessDeniedError, ProviderError
from secretsync.models.remote import CallGate, FindQuery, RemoteRef, RemoteValue
from secretsync.models.store import AwsProvider
from secretsync.providers.aws import api, errors, listing, matching
from secretsync.providers.aws import credentials as aws_credentials
from secretsync.providers.base import RemoteMetadata

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_secretsmanager.literals import FilterNameStringTypeType
    from mypy_boto3_secretsmanager.type_defs import (
        BatchGetSecretValueRequestTypeDef,
        FilterTypeDef,
        GetSecretValueRequestTypeDef,
        GetSecretValueResponseTypeDef,
        ListSecretsRequestTypeDef,
        SecretValueEntryTypeDef,
    )

BATCH_SIZE = 20  # BatchGetSecretValue's limit on SecretIdList
LIST_PAGE_SIZE = listing.PAGE_SIZE  # ListSecrets' largest page
CURRENT = "AWSCURRENT"

# Version ids are UUIDs (unless a writer chose its own ClientRequestToken); anything
# else a user writes in remoteRef.version is a staging label such as AWSPREVIOUS.
_VERSION_ID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# What ListSecrets takes as a filter value.
_FILTER_VALUE = re.compile(r"^[a-zA-Z0-9 :_@/+=.\-]{1,512}$")
# A full ARN ends in "-" and six random characters; a partial ARN omits them.
_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")


def _is_version_id(version: str) -> bool:
    return bool(_VERSION_ID.match(version))


def _value(
    entry: SecretValueEntryTypeDef | GetSecretValueResponseTypeDef, *, operation: str, key: str
) -> RemoteValue | ProviderError:
    version = entry.get("VersionId", "")
    if "SecretString" in entry:
        return RemoteValue(value=entry["SecretString"].encode("utf-8"), version=version)
    if "SecretBinary" in entry:
        return RemoteValue(value=bytes(entry["SecretBinary"]), version=version, is_binary=True)
    return ProviderError(f"AWS {operation} of {key!r}: the secret version holds no value")


def _listable(key: str) -> bool:
    """Whether a listing can answer for the key: a name the name filter takes. An ARN,
    full or partial, may name a secret of another account (shared by its resource
    policy), which this account's listing never shows; a name the filter refuses is
    malformed anyway, and DescribeSecret says so."""
    return not key.startswith("arn:") and bool(_FILTER_VALUE.match(key))


def _version_at(versions: Mapping[str, Sequence[str]], stage: str) -> str | None:
    """The version id that holds the staging label, if any does."""
    for version_id, stages in versions.items():
        if stage in stages:
            return version_id
    return None


def _names_of(entry: SecretValueEntryTypeDef) -> set[str]:
    """Every way a ref may have named this secret: name, full ARN, partial ARN."""
    names = {entry.get("Name", ""), entry.get("ARN", "")}
    names.add(_ARN_SUFFIX.sub("", entry.get("ARN", "")))
    names.discard("")
    return names


class SecretsManager:
    """Reads Secrets Manager secrets as one session; batched with BatchGetSecretValue."""

    def __init__(
        self, *, spec: AwsProvider, credentials: aws_credentials.Credentials, gate: CallGate
    ) -> None:
        self._api: api.Api[SecretsManagerClient] = api.Api(
            spec=spec,
            credentials=credentials,
            make=aws_credentials.secretsmanager_client,
            gate=gate,
        )
        # Cleared when AWS refuses ListSecrets to this session: the role was granted
        # DescribeSecret only, and change checks keep to it rather than meet the same
        # refusal every time.
        self._may_list = True

    async def fetch(
        self, refs: Sequence[RemoteRef]
    ) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
        """Current values in batches of 20, pinned versions one GetSecretValue each.

        Errors of one secret are its result; an outage or refused credentials are raised.
        """
        await self._api.client()  # a store that cannot build one fails as a whole
        unique = list(dict.fromkeys(refs))
        current = [ref for ref in unique if ref.version is None]
        pinned = [ref for ref in unique if ref.version is not None]
        results: dict[RemoteRef, RemoteValue | ProviderError] = {}
        for batch in await api.gather_each(
            list(api.chunks(current, BATCH_SIZE)), self._fetch_batch
        ):
            if isinstance(batch, ProviderError):  # _fetch_batch maps its own errors
                raise batch
            results.update(batch)
        pinned_values = await api.gather_each(pinned, self._fetch_pinned)
        results.update(zip(pinned, pinned_values, strict=True))
        api.raise_session_errors(results.values())
        return results

    async def _fetch_batch(
        self, batch: Sequence[RemoteRef]
    ) -> dict[RemoteRef, RemoteValue | ProviderError]:
        operation = "BatchGetSecretValue"
        client = await self._api.client()
        by_key = {ref.key: ref for ref in batch}
        subject = batch[0].key if len(batch) == 1 else f"{len(batch)} keys"
        results: dict[RemoteRef, RemoteValue | ProviderError] = {}
        next_token = ""
        try:
            while True:
                # A SecretIdList answers in one page today; follow NextToken should AWS split it.
                request: BatchGetSecretValueRequestTypeDef = {"SecretIdList": list(by_key)}
                if next_token:
                    request["NextToken"] = next_token
                page = await self._api.call(
                    operation,
                    functools.partial(client.batch_get_secret_value, **request),
                    key=subject,
                )
                for entry in page.get("SecretValues", []):
                    for name in _names_of(entry) & by_key.keys():
                        results[by_key[name]] = _value(entry, operation=operation, key=name)
                for error in page.get("Errors", []):
                    key = error.get("SecretId", "")
                    code = error.get("ErrorCode", "")
                    if key in by_key:
                        results[by_key[key]] = errors.for_code(
                            code,
                            operation=operation,
                            key=key,
                            deleted=errors.is_scheduled_deletion(code, error.get("Message", "")),
                        )
                next_token = page.get("NextToken", "")
                if not next_token:
                    break
        except ProviderError as failure:
            # The whole call failed (throttled, denied, down): every ref in it shares why.
            return {ref: results.get(ref, failure) for ref in batch}
        for ref in batch:
            if ref not in results:
                results[ref] = ProviderError(
                    f"AWS {operation} of {ref.key!r}: the answer held neither a value nor an error"
                )
        return results

    async def _fetch_pinned(self, ref: RemoteRef) -> RemoteValue | ProviderError:
        operation = "GetSecretValue"
        client = await self._api.client()
        version = ref.version or CURRENT
        request: GetSecretValueRequestTypeDef = {"SecretId": ref.key}
        if _is_version_id(version):
            request["VersionId"] = version
        else:
            request["VersionStage"] = version
        answer = await self._api.call(
            operation, functools.partial(client.get_secret_value, **request), key=ref.key
        )
        return _value(answer, operation=operation, key=ref.key)

    async def versions(self, refs: Sequence[RemoteRef]) -> Mapping[RemoteRef, str]:
        """The version id each ref reads now, without reading a value.

        Refs by name, current or pinned to a staging label, are answered by ListSecrets
        (every secret's SecretVersionsToStages, 100 secrets a page; see listing.py for
        how names become filters): about ceil(U/100) calls for U names that share a
        few prefixes. A ref pinned to a version id is its own answer (a version's value
        never changes). DescribeSecret, one call each, answers for ARNs, for names the
        name filter refuses, for names even an exact listing gave up on (its page
        budget ran out) and for everything once AWS refused this session ListSecrets.

        ListSecrets is eventually consistent: AWS says it might not reflect changes of
        the last five minutes, where DescribeSecret is current. A rotation may then be
        seen a check or a few late, and a version the engine has just read may look
        moved until the listing catches up, each such check costing a needless sync of
        that SecretSync; the refresh timer and change events remain the safety net.
        That is the price of answering for 100 secrets a call instead of one.

        ListSecrets is granted for the account as a whole: a secret this role may not
        read still shows its versions, and the engine meets the denial when a version
        moves and it fetches. Secrets missing or scheduled for deletion (ListSecrets
        leaves those out) are left out, as are refs DescribeSecret fails for; an outage
        or refused credentials are raised.
        """
        await self._api.client()  # a store that cannot build one fails as a whole
        result: dict[RemoteRef, str] = {}
        listed: list[RemoteRef] = []
        described: list[RemoteRef] = []
        for ref in dict.fromkeys(refs):
            if ref.version is not None and _is_version_id(ref.version):
                result[ref] = ref.version
            elif _listable(ref.key):
                listed.append(ref)
            else:
                described.append(ref)
        found, unanswered = await self._listed([ref.key for ref in listed])
        for ref in listed:
            if ref.key in unanswered:
                described.append(ref)
            elif ref.key in found:
                version = _version_at(found[ref.key], ref.version or CURRENT)
                if version is not None:
                    result[ref] = version
        answers = await api.gather_each(described, self._version)
        api.raise_session_errors(answers)
        result.update(
            (ref, version)
            for ref, version in zip(described, answers, strict=True)
            if isinstance(version, str)
        )
        return result

    async def _listed(
        self, names: Sequence[str]
    ) -> tuple[dict[str, Mapping[str, Sequence[str]]], set[str]]:
        """The SecretVersionsToStages of each name the listings found, and the names
        they could not answer for, which are DescribeSecret's: broad listings first,
        exact ones for what a broad one gave up on."""
        found: dict[str, Mapping[str, Sequence[str]]] = {}
        unanswered: set[str] = set()
        plans = listing.broad(names)  # _listable: every name is a filter value
        while plans:
            if not self._may_list:
                unanswered.update(name for plan in plans for name in plan.names)
                break
            outcomes = await api.gather_each(plans, self._list)
            api.raise_session_errors(outcomes)
            narrower: list[str] = []
            for plan, outcome in zip(plans, outcomes, strict=True):
                if isinstance(outcome, ProviderError):
                    # Denied: the role lacks secretsmanager:ListSecrets. Anything else
                    # (a filter AWS rejected): DescribeSecret still answers these names.
                    if isinstance(outcome, AccessDeniedError):
                        self._may_list = False
                    unanswered.update(plan.names)
                    continue
                seen, finished = outcome
                found.update(seen)
                rest = plan.names - seen.keys()
                if finished or not rest:
                    # A name a finished listing did not show is missing (or too new
                    # for the listing): left out, as DescribeSecret's error would be.
                    continue
                if plan.exact:
                    unanswered.update(rest)
                else:
                    narrower.extend(rest)
            plans = listing.exact(narrower)
        return found, unanswered

    async def _list(
        self, plan: listing.Listing
    ) -> tuple[dict[str, Mapping[str, Sequence[str]]], bool]:
        """The versions of the plan's names one ListSecrets query shows, and whether it
        was followed to its end (False: its page budget ran out first)."""
        client = await self._api.client()
        filters: list[FilterTypeDef] = [{"Key": "name", "Values": list(plan.prefixes)}]
        subject = next(iter(plan.names)) if len(plan.names) == 1 else f"{len(plan.names)} keys"
        seen: dict[str, Mapping[str, Sequence[str]]] = {}
        pages = 0
        next_token = ""
        while True:
            request: ListSecretsRequestTypeDef = {"Filters": filters, "MaxResults": LIST_PAGE_SIZE}
            if next_token:
                request["NextToken"] = next_token
            page = await self._api.call(
                "ListSecrets", functools.partial(client.list_secrets, **request), key=subject
            )
            pages += 1
            for entry in page.get("SecretList", []):
                # A prefix also matches other secrets: only exact names count.
                name = entry.get("Name", "")
                if name in plan.names:
                    seen[name] = entry.get("SecretVersionsToStages", {})
            next_token = page.get("NextToken", "")
            # Every name found: later pages could only hold secrets nobody asked for.
            if not next_token or seen.keys() >= plan.names:
                return seen, True
            if pages >= plan.budget:
                return seen, False

    async def _version(self, ref: RemoteRef) -> str | None:
        client = await self._api.client()
        described = await self._api.call(
            "DescribeSecret",
            functools.partial(client.describe_secret, SecretId=ref.key),
            key=ref.key,
        )
        if described.get("DeletedDate"):
            return None  # scheduled for deletion: fetch() calls it not found, as a listing does
        return _version_at(described.get("VersionIdsToStages", {}), ref.version or CURRENT)

    async def metadata(self, ref: RemoteRef) -> RemoteMetadata:
        """DescribeSecret: whether rotation is on, and when the value last rotated (else
        when the secret was made; LastChangedDate also moves with tags and descriptions,
        which would hide a stale value); no value is read."""
        client = await self._api.client()
        described = await self._api.call(
            "DescribeSecret",
            functools.partial(client.describe_secret, SecretId=ref.key),
            key=ref.key,
        )
        when = described.get("LastRotatedDate") or described.get("CreatedDate")
        return RemoteMetadata(
            rotation_enabled=bool(described.get("RotationEnabled", False)),
            last_changed=when.timestamp() if when is not None else None,
        )

    async def find(self, query: FindQuery) -> Sequence[RemoteRef]:
        """ListSecrets narrowed on the server by name prefix and tags, then matched exactly
        here (AWS filters match prefixes and tag keys and values independently)."""
        pattern = matching.name_pattern(query.name_regexp)
        filters: list[FilterTypeDef] = []
        candidates: list[tuple[FilterNameStringTypeType, list[str]]] = [
            ("name", [query.path or ""]),
            ("tag-key", [key for key, _ in query.tags]),
            ("tag-value", [value for _, value in query.tags]),
        ]
        for filter_key, values in candidates:
            # Only values ListSecrets accepts go to the server ("!" would even negate);
            # the checks below are exact either way.
            usable = [v for v in values if _FILTER_VALUE.match(v)]
            if usable:
                filters.append({"Key": filter_key, "Values": usable})
        client = await self._api.client()
        names: set[str] = set()
        next_token = ""
        while True:
            request: ListSecretsRequestTypeDef = {"Filters": filters, "MaxResults": LIST_PAGE_SIZE}
            if next_token:
                request["NextToken"] = next_token
            page = await self._api.call(
                "ListSecrets", functools.partial(client.list_secrets, **request), key=query.path
            )
            for entry in page.get("SecretList", []):
                name = entry.get("Name", "")
                tags = {tag.get("Key"): tag.get("Value") for tag in entry.get("Tags", [])}
                if (
                    name
                    and name.startswith(query.path or "")
                    and all(tags.get(key) == value for key, value in query.tags)
                    and (pattern is None or pattern.search(name))
                ):
                    names.add(name)
            next_token = page.get("NextToken", "")
            if not next_token:
                break
        return [RemoteRef(key=name) for name in sorted(names)]

    async def validate(self) -> None:
        """STS GetCallerIdentity with the session's credentials."""
        await self._api.validate()

    async def close(self) -> None:
        """Close the SDK clients."""
        await self._api.close()
