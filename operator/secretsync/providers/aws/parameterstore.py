"""AWS SSM Parameter Store behind the SecretsClient protocol.

A ref's version becomes a GetParameters selector: "name:3" (a version number)
or "name:label" (a parameter label).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from secretsync.errors import ProviderError, SecretNotFoundError
from secretsync.models.remote import CallGate, FindQuery, RemoteRef, RemoteValue
from secretsync.models.store import AwsProvider
from secretsync.providers.aws import api, matching
from secretsync.providers.aws import credentials as aws_credentials
from secretsync.providers.base import RemoteMetadata

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_ssm.type_defs import (
        DescribeParametersRequestTypeDef,
        GetParametersByPathRequestTypeDef,
        GetParametersResultTypeDef,
        ParameterStringFilterTypeDef,
    )

BATCH_SIZE = 10  # GetParameters' limit on Names
BY_PATH_PAGE_SIZE = 10  # GetParametersByPath's largest page
DESCRIBE_PAGE_SIZE = 50  # DescribeParameters' largest page
_ARN_FIELDS = 6  # arn:partition:ssm:region:account:parameter/name


def _request_name(ref: RemoteRef) -> str:
    return f"{ref.key}:{ref.version}" if ref.version else ref.key


def _base(name: str) -> str:
    """The parameter a request name reads, without its ":version" or ":label" selector."""
    if name.startswith("arn:"):
        return ":".join(name.split(":")[:_ARN_FIELDS])
    return name.split(":", 1)[0]


def _selector(name: str) -> str | None:
    base = _base(name)
    return name[len(base) + 1 :] if len(name) > len(base) else None


def _batches(refs: Sequence[RemoteRef]) -> list[dict[str, RemoteRef]]:
    """Refs grouped into GetParameters calls, by request name.

    No call holds one parameter twice: GetParameters answers with the bare
    name (moto omits the Selector that AWS adds), so "db" and "db:1" in one
    call could not be told apart. Reading one parameter at several versions
    at once is rare; it costs one more call.
    """
    batches: list[dict[str, RemoteRef]] = []
    bases: list[set[str]] = []
    for ref in dict.fromkeys(refs):
        name, base = _request_name(ref), _base(_request_name(ref))
        for batch, seen in zip(batches, bases, strict=True):
            if len(batch) < BATCH_SIZE and base not in seen:
                batch[name] = ref
                seen.add(base)
                break
        else:
            batches.append({name: ref})
            bases.append({base})
    return batches


class ParameterStore:
    """Reads SSM parameters as one session; batched with GetParameters."""

    def __init__(
        self, *, spec: AwsProvider, credentials: aws_credentials.Credentials, gate: CallGate
    ) -> None:
        self._api: api.Api[SSMClient] = api.Api(
            spec=spec,
            credentials=credentials,
            make=aws_credentials.ssm_client,
            gate=gate,
        )

    async def _get_parameters(
        self, batch: Mapping[str, RemoteRef], *, decrypt: bool
    ) -> GetParametersResultTypeDef:
        client = await self._api.client()
        subject = next(iter(batch)) if len(batch) == 1 else f"{len(batch)} keys"
        return await self._api.call(
            "GetParameters",
            functools.partial(client.get_parameters, Names=list(batch), WithDecryption=decrypt),
            key=subject,
        )

    async def fetch(
        self, refs: Sequence[RemoteRef]
    ) -> Mapping[RemoteRef, RemoteValue | ProviderError]:
        """Values in batches of 10, decrypted; unknown names and versions are not found.

        Errors of one parameter are its result; an outage or refused credentials are raised.
        """
        await self._api.client()  # a store that cannot build one fails as a whole
        results: dict[RemoteRef, RemoteValue | ProviderError] = {}
        batches = _batches(refs)
        answers = await api.gather_each(
            batches, functools.partial(self._get_parameters, decrypt=True)
        )
        for batch, answer in zip(batches, answers, strict=True):
            if isinstance(answer, ProviderError):  # the whole call failed: every ref shares why
                results.update(dict.fromkeys(batch.values(), answer))
                continue
            by_base = {_base(name): ref for name, ref in batch.items()}
            for parameter in answer.get("Parameters", []):
                for name in {parameter.get("Name"), parameter.get("ARN")} & by_base.keys():
                    results[by_base[str(name)]] = RemoteValue(
                        value=parameter.get("Value", "").encode("utf-8"),
                        version=str(parameter.get("Version", "")),
                    )
            for name in answer.get("InvalidParameters", []):
                if name in batch:
                    results[batch[name]] = SecretNotFoundError(
                        f"AWS GetParameters of {name!r}: the parameter or that version "
                        "does not exist (InvalidParameters)"
                    )
            for name, ref in batch.items():
                if ref not in results:
                    results[ref] = ProviderError(
                        f"AWS GetParameters of {name!r}: the answer held neither a value "
                        "nor an error"
                    )
        api.raise_session_errors(results.values())
        return results

    async def versions(self, refs: Sequence[RemoteRef]) -> Mapping[RemoteRef, str]:
        """The version number each ref reads now.

        A ref pinned to a version number is its own answer (a version never
        changes). The others use GetParameters *without* decryption, ceil(U/10)
        calls for U names: SecureString values come back still encrypted and are
        dropped unread, no kms:Decrypt happens, it needs only the ssm:GetParameters
        permission fetch() already needs, and it understands label selectors.

        The listings were measured against it (500 parameters under 10 paths, on
        moto; docs/design/0007-change-checks.md) and are not cheaper: GetParameters
        took 50 calls, GetParametersByPath 60 (10 a page at most, plus a last empty
        page per path), DescribeParameters 51 with a BeginsWith filter on the 10
        paths and 60 with Equals on 50 names a query. On AWS, DescribeParameters
        could take 50 a page, but it pages on a best-effort basis (a page may hold
        anything from none to 50), it cannot be granted on a path (only on "*",
        which shows every parameter's name in the account), and a path's listing
        also reads the parameters nobody watches.

        Refs whose parameter is missing, unreadable or malformed are left out:
        the engine then fetches them and meets the error per ref. An outage or
        refused credentials are raised.
        """
        await self._api.client()  # a store that cannot build one fails as a whole
        result: dict[RemoteRef, str] = {}
        lookup: list[RemoteRef] = []
        for ref in dict.fromkeys(refs):
            selector = _selector(_request_name(ref))
            if selector is not None and selector.isdigit():
                result[ref] = selector
            else:
                lookup.append(ref)
        batches = _batches(lookup)
        answers = await api.gather_each(
            batches, functools.partial(self._get_parameters, decrypt=False)
        )
        api.raise_session_errors(answers)
        for batch, answer in zip(batches, answers, strict=True):
            if isinstance(answer, ProviderError):
                continue
            by_base = {_base(name): ref for name, ref in batch.items()}
            for parameter in answer.get("Parameters", []):
                for name in {parameter.get("Name"), parameter.get("ARN")} & by_base.keys():
                    result[by_base[str(name)]] = str(parameter.get("Version", ""))
        return result

    async def find(self, query: FindQuery) -> Sequence[RemoteRef]:
        """Parameters under a path (GetParametersByPath, which a role can be granted on
        just that path), or matching tags (DescribeParameters); names then filtered by
        the exact prefix and the regexp here."""
        pattern = matching.name_pattern(query.name_regexp)
        path = query.path or ""
        if matching.contradictory(query.tags):
            return []
        if path.startswith("/") and not query.tags:
            names = await self._names_by_path(_hierarchy(path))
        else:
            names = await self._names_described(path, query.tags)
        return [
            RemoteRef(key=name)
            for name in sorted(names)
            if name.startswith(path) and (pattern is None or pattern.search(name))
        ]

    async def _names_by_path(self, hierarchy: str) -> set[str]:
        client = await self._api.client()
        names: set[str] = set()
        next_token = ""
        while True:
            # Without decryption: only the names are wanted, and no KMS call is made.
            request: GetParametersByPathRequestTypeDef = {
                "Path": hierarchy,
                "Recursive": True,
                "WithDecryption": False,
                "MaxResults": BY_PATH_PAGE_SIZE,
            }
            if next_token:
                request["NextToken"] = next_token
            page = await self._api.call(
                "GetParametersByPath",
                functools.partial(client.get_parameters_by_path, **request),
                key=hierarchy,
            )
            names.update(p["Name"] for p in page.get("Parameters", []) if "Name" in p)
            next_token = page.get("NextToken", "")
            if not next_token:
                return names

    async def _names_described(self, path: str, tags: tuple[tuple[str, str], ...]) -> set[str]:
        filters: list[ParameterStringFilterTypeDef] = []
        for key, value in dict(tags).items():  # find() ruled out two values for one key
            filters.append({"Key": f"tag:{key}", "Option": "Equals", "Values": [value]})
        if path.startswith("/"):
            filters.append({"Key": "Path", "Option": "Recursive", "Values": [_hierarchy(path)]})
        elif path:
            filters.append({"Key": "Name", "Option": "BeginsWith", "Values": [path]})
        client = await self._api.client()
        names: set[str] = set()
        next_token = ""
        while True:
            request: DescribeParametersRequestTypeDef = {"MaxResults": DESCRIBE_PAGE_SIZE}
            if filters:
                request["ParameterFilters"] = filters
            if next_token:
                request["NextToken"] = next_token
            page = await self._api.call(
                "DescribeParameters",
                functools.partial(client.describe_parameters, **request),
                key=path or None,
            )
            names.update(p["Name"] for p in page.get("Parameters", []) if "Name" in p)
            next_token = page.get("NextToken", "")
            if not next_token:
                return names

    async def metadata(self, ref: RemoteRef) -> RemoteMetadata:
        """DescribeParameters narrowed to the one name: when the parameter last changed.
        GetParameter would return the value itself, so it is not used."""
        name = _base(_request_name(ref))
        client = await self._api.client()
        page = await self._api.call(
            "DescribeParameters",
            functools.partial(
                client.describe_parameters,
                ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}],
            ),
            key=name,
        )
        found = [p for p in page.get("Parameters", []) if p.get("Name") == name]
        if not found:
            raise SecretNotFoundError(f"ssm: parameter {name} not found (or not described)")
        when = found[0].get("LastModifiedDate")
        return RemoteMetadata(
            rotation_enabled=None, last_changed=when.timestamp() if when is not None else None
        )

    async def validate(self) -> None:
        """STS GetCallerIdentity with the session's credentials."""
        await self._api.validate()

    async def close(self) -> None:
        """Close the SDK clients."""
        await self._api.close()


def _hierarchy(path: str) -> str:
    """The deepest SSM hierarchy holding every name that starts with `path`
    ("/team-a/db-" -> "/team-a", "/team-a/" -> "/team-a", "/db" -> "/")."""
    return path[: path.rfind("/")] or "/"
