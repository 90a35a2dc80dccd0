"""ESO SecretStore and ClusterSecretStore to secretsync's: providers aws and vault.

A store that cannot be expressed safely (a provider or an identity secretsync lacks, a
role it cannot know) is not converted at all rather than converted to something that
would read as someone else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from secretsync.convert.fields import (
    HTTP_URL,
    ROLE_ARN,
    defaulted,
    items,
    obj,
    strings,
    text,
    unknown,
)
from secretsync.convert.read import Document
from secretsync.convert.report import ObjectReport

MAX_ADDITIONAL_ROLES = 4  # the CRD's maxItems
AWS_AUDIENCE = "sts.amazonaws.com"  # ESO and secretsync both ask for it
VAULT_AUDIENCE = "vault"  # both default to it
PUSH_ONLY = frozenset({"secretsManager", "checkAndSet"})  # settings of ESO's PushSecret


@dataclasses.dataclass(frozen=True, slots=True)
class StoreFacts:
    """What converting an ExternalSecret needs to know about its store."""

    provider: str  # "aws" | "vault" | another ESO provider name
    service: str | None = None  # aws: SecretsManager | ParameterStore
    vault_path: str | None = None
    vault_version: str = "v2"


class Unconvertible(Exception):  # noqa: N818 - control flow inside this module
    """The store cannot be converted; the report already says why."""


def facts(doc: Document) -> StoreFacts | None:
    """The provider facts of an ESO store document (None: no provider)."""
    provider = obj(obj(doc.body.get("spec")).get("provider"))
    if not provider:
        return None
    name = next(iter(provider))
    if name == "aws":
        return StoreFacts("aws", service=text(obj(provider["aws"]).get("service")))
    if name == "vault":
        vault = obj(provider["vault"])
        version = text(vault.get("version")) or "v2"
        return StoreFacts("vault", vault_path=_vault_mount(vault, version), vault_version=version)
    return StoreFacts(name)


def _vault_mount(vault: Mapping[str, Any], version: str) -> str | None:
    path = text(vault.get("path"))
    if path is None:
        return None
    path = path.strip("/")
    if version == "v2" and path.endswith("/data"):
        path = path[: -len("/data")]
    return path or None


class _StoreConverter:
    def __init__(self, doc: Document, report: ObjectReport, *, aws_endpoint: str | None) -> None:
        self.doc = doc
        self.report = report
        self.cluster = doc.kind == "ClusterSecretStore"
        self.aws_endpoint = aws_endpoint

    def fail(self, path: str, reason: str) -> Unconvertible:
        self.report.drop(path, reason)
        return Unconvertible()

    def push_only(self, provider: Mapping[str, Any], path: str) -> None:
        for key in sorted(PUSH_ONLY & set(provider)):
            self.report.note(f"{path}.{key}", "ignored: it applies to PushSecret only")

    # --- references --------------------------------------------------------------

    def namespace_of(self, ref: Mapping[str, Any], path: str) -> str | None:
        """A reference's namespace as secretsync takes it (None: the default one)."""
        ns = text(ref.get("namespace"))
        if ns is None:
            return None
        if self.cluster:
            return ns
        if ns == self.doc.namespace:
            return None  # a SecretStore always reads its own namespace
        raise self.fail(
            f"{path}.namespace",
            "a SecretStore may not read from another namespace in secretsync",
        )

    def secret_key(self, ref: Any, path: str) -> dict[str, Any]:
        ref = obj(ref)
        name, key = text(ref.get("name")), text(ref.get("key"))
        if name is None or key is None:
            raise self.fail(path, "needs both name and key")
        out: dict[str, Any] = {"name": name, "key": key}
        ns = self.namespace_of(ref, path)
        if ns is not None:
            out["namespace"] = ns
        return out

    def service_account(self, ref: Any, path: str, *, default_audience: str) -> dict[str, Any]:
        ref = obj(ref)
        name = text(ref.get("name"))
        if name is None:
            raise self.fail(f"{path}.name", "a ServiceAccount reference needs a name")
        out: dict[str, Any] = {"name": name}
        ns = text(ref.get("namespace"))
        if ns is not None and (self.cluster or ns != self.doc.namespace):
            self.report.lose(
                f"{path}.namespace",
                "dropped: secretsync always resolves the ServiceAccount in the namespace "
                "being synced, so that each namespace authenticates as itself",
            )
        audiences = [str(a) for a in items(ref.get("audiences")) if a]
        if audiences:
            if default_audience == AWS_AUDIENCE:
                # ESO appends these to sts.amazonaws.com for AWS; secretsync takes the list.
                audiences = [AWS_AUDIENCE, *audiences]
            out["audiences"] = list(dict.fromkeys(audiences))
        return out

    # --- the spec ----------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        spec = obj(self.doc.body.get("spec"))
        unknown(self.report, spec, {"provider", "conditions", "refreshInterval"}, "spec")
        if spec.get("refreshInterval"):
            self.report.lose(
                "spec.refreshInterval",
                "not converted: secretsync validates a store when it changes and reports "
                "provider errors on each sync instead",
            )
        provider = obj(spec.get("provider"))
        if len(provider) != 1:
            raise self.fail("spec.provider", "needs exactly one provider")
        name, body = next(iter(provider.items()))
        if name == "aws":
            out: dict[str, Any] = {"provider": {"aws": self.aws(obj(body))}}
        elif name == "vault":
            out = {"provider": {"vault": self.vault(obj(body))}}
        else:
            raise self.fail(
                f"spec.provider.{name}",
                "secretsync has no such provider (aws and vault only)",
            )
        conditions = spec.get("conditions")
        if conditions and self.cluster:
            out["conditions"] = self.conditions(items(conditions))
        elif conditions:
            self.report.lose("spec.conditions", "not converted: only a ClusterSecretStore has them")
        return out

    def aws(self, aws: Mapping[str, Any]) -> dict[str, Any]:
        path = "spec.provider.aws"
        unknown(
            self.report,
            aws,
            {"service", "region", "role", "additionalRoles", "auth", "sessionTagsPolicy"}
            | PUSH_ONLY,
            path,
        )
        self.push_only(aws, path)
        defaulted(self.report, aws, "sessionTagsPolicy", {"None"}, path)
        service = text(aws.get("service"))
        if service not in ("SecretsManager", "ParameterStore"):
            raise self.fail(f"{path}.service", "must be SecretsManager or ParameterStore")
        region = text(aws.get("region"))
        if region is None:
            raise self.fail(f"{path}.region", "secretsync needs the region")
        out: dict[str, Any] = {"service": service, "region": region}
        if self.aws_endpoint:
            out["endpoint"] = self.aws_endpoint
        # ESO assumes additionalRoles in order, then role; secretsync assumes role, then
        # additionalRoles in order: the same chain, written the other way round.
        chain = [str(r) for r in items(aws.get("additionalRoles")) if r]
        if text(aws.get("role")):
            chain.append(str(aws["role"]))
        for i, arn in enumerate(chain):
            if not ROLE_ARN.match(arn):
                raise self.fail(
                    f"{path}.role" if i == len(chain) - 1 else f"{path}.additionalRoles",
                    "is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
                )
        if len(chain) > 1 + MAX_ADDITIONAL_ROLES:
            raise self.fail(f"{path}.additionalRoles", "secretsync chains at most 5 roles")
        if chain:
            out["role"] = chain[0]
        if chain[1:]:
            out["additionalRoles"] = chain[1:]
        auth = self.aws_auth(obj(aws.get("auth")), f"{path}.auth")
        if auth:
            out["auth"] = auth
            if "serviceAccount" in auth:
                if not chain:
                    raise self.fail(
                        f"{path}.role",
                        "ESO took the role from the ServiceAccount's eks.amazonaws.com/role-arn "
                        "annotation; secretsync needs it in spec.provider.aws.role: set role",
                    )
                self.report.note(
                    f"{path}.auth.jwt",
                    "secretsync exchanges the ServiceAccount token for the first role of the "
                    "chain directly (AssumeRoleWithWebIdentity): its trust policy must trust "
                    "the cluster's OIDC issuer (docs/aws-iam.md)",
                )
        elif not self.cluster:
            raise self.fail(
                f"{path}.auth",
                "ESO used the controller's own credentials; a secretsync SecretStore must "
                "name an identity (jwt.serviceAccountRef or secretRef)",
            )
        else:
            self.report.note(
                f"{path}.auth", "none: secretsync's operator uses its own ambient credentials"
            )
        return out

    def aws_auth(self, auth: Mapping[str, Any], path: str) -> dict[str, Any]:
        unknown(self.report, auth, {"jwt", "secretRef"}, path)
        if auth.get("jwt"):
            jwt = obj(auth["jwt"])
            unknown(self.report, jwt, {"serviceAccountRef"}, f"{path}.jwt")
            if not jwt.get("serviceAccountRef"):
                raise self.fail(f"{path}.jwt", "needs serviceAccountRef in secretsync")
            sa = self.service_account(
                jwt["serviceAccountRef"],
                f"{path}.jwt.serviceAccountRef",
                default_audience=AWS_AUDIENCE,
            )
            return {"serviceAccount": sa}
        if auth.get("secretRef"):
            ref = obj(auth["secretRef"])
            p = f"{path}.secretRef"
            unknown(
                self.report,
                ref,
                {"accessKeyIDSecretRef", "secretAccessKeySecretRef", "sessionTokenSecretRef"},
                p,
            )
            keys: dict[str, Any] = {
                "accessKeyId": self.secret_key(
                    ref.get("accessKeyIDSecretRef"), f"{p}.accessKeyIDSecretRef"
                ),
                "secretAccessKey": self.secret_key(
                    ref.get("secretAccessKeySecretRef"), f"{p}.secretAccessKeySecretRef"
                ),
            }
            if ref.get("sessionTokenSecretRef"):
                keys["sessionToken"] = self.secret_key(
                    ref["sessionTokenSecretRef"], f"{p}.sessionTokenSecretRef"
                )
            return {"secretRef": keys}
        return {}

    def vault(self, vault: Mapping[str, Any]) -> dict[str, Any]:
        path = "spec.provider.vault"
        unknown(
            self.report,
            vault,
            {"server", "path", "version", "namespace", "caBundle", "caProvider", "auth"}
            | PUSH_ONLY,
            path,
        )
        self.push_only(vault, path)
        server = text(vault.get("server"))
        if server is None or not HTTP_URL.match(server):
            raise self.fail(f"{path}.server", "must be an http(s) URL")
        version = text(vault.get("version")) or "v2"
        if version not in ("v1", "v2"):
            raise self.fail(f"{path}.version", "must be v1 or v2")
        mount = _vault_mount(vault, version)
        if mount is None:
            raise self.fail(
                f"{path}.path",
                "unset: ESO then reads the KV mount from each remote key's first segment; "
                "secretsync needs the mount here (set path, and keys relative to it)",
            )
        out: dict[str, Any] = {"server": server, "path": mount, "version": version}
        if text(vault.get("namespace")):
            out["namespace"] = str(vault["namespace"])
        if text(vault.get("caBundle")):
            out["caBundle"] = str(vault["caBundle"])
        if vault.get("caProvider"):
            ca = obj(vault["caProvider"])
            p = f"{path}.caProvider"
            unknown(self.report, ca, {"type", "name", "key", "namespace"}, p)
            kind, name, key = text(ca.get("type")), text(ca.get("name")), text(ca.get("key"))
            if kind not in ("Secret", "ConfigMap") or name is None or key is None:
                raise self.fail(p, "needs type (Secret or ConfigMap), name and key")
            ref: dict[str, Any] = {"kind": kind, "name": name, "key": key}
            ns = self.namespace_of(ca, p)
            if ns is not None:
                ref["namespace"] = ns
            if "caBundle" in out:
                self.report.lose(p, "dropped: secretsync takes caBundle or caRef, not both")
            else:
                out["caRef"] = ref
        auth = obj(vault.get("auth"))
        if not auth:
            raise self.fail(f"{path}.auth", "secretsync needs an auth method")
        if text(auth.get("namespace")) not in (None, out.get("namespace")):
            self.report.lose(
                f"{path}.auth.namespace",
                "not converted: secretsync logs in within spec.provider.vault.namespace",
            )
        out["auth"] = self.vault_auth(auth, f"{path}.auth")
        return out

    def vault_auth(self, auth: Mapping[str, Any], path: str) -> dict[str, Any]:
        methods = [k for k, v in auth.items() if v and k != "namespace"]
        if len(methods) != 1:
            raise self.fail(path, "needs exactly one auth method")
        method = methods[0]
        body = obj(auth[method])
        p = f"{path}.{method}"
        if method == "tokenSecretRef":
            return {"token": {"secretRef": self.secret_key(body, p)}}
        if method == "appRole":
            unknown(self.report, body, {"path", "roleId", "secretRef"}, p)
            if body.get("roleRef"):
                raise self.fail(
                    f"{p}.roleRef", "secretsync takes the role id itself (roleId), not a Secret"
                )
            role_id = text(body.get("roleId"))
            if role_id is None:
                raise self.fail(f"{p}.roleId", "secretsync needs the role id")
            return {
                "appRole": {
                    "mountPath": text(body.get("path")) or "approle",
                    "roleId": role_id,
                    "secretIdRef": self.secret_key(body.get("secretRef"), f"{p}.secretRef"),
                }
            }
        if method == "kubernetes":
            unknown(self.report, body, {"mountPath", "role", "serviceAccountRef"}, p)
            if not body.get("serviceAccountRef"):
                raise self.fail(
                    p,
                    "without serviceAccountRef ESO used a token from a Secret or its own; "
                    "secretsync logs in with a ServiceAccount's TokenRequest token",
                )
            role = text(body.get("role"))
            if role is None:
                raise self.fail(f"{p}.role", "secretsync needs the Vault role")
            sa = self.service_account(
                body["serviceAccountRef"], f"{p}.serviceAccountRef", default_audience=VAULT_AUDIENCE
            )
            return {
                "kubernetes": {
                    "mountPath": text(body.get("mountPath")) or "kubernetes",
                    "role": role,
                    "serviceAccount": sa,
                }
            }
        if method == "jwt":
            unknown(self.report, body, {"path", "role", "kubernetesServiceAccountToken"}, p)
            token = obj(body.get("kubernetesServiceAccountToken"))
            if not token:
                raise self.fail(
                    p,
                    "without kubernetesServiceAccountToken ESO read the JWT from a Secret; "
                    "secretsync logs in with a ServiceAccount's TokenRequest token",
                )
            role = text(body.get("role"))
            if role is None:
                raise self.fail(f"{p}.role", "secretsync needs the Vault role")
            tp = f"{p}.kubernetesServiceAccountToken"
            unknown(self.report, token, {"serviceAccountRef", "audiences"}, tp)
            sa = self.service_account(
                token.get("serviceAccountRef"), f"{tp}.serviceAccountRef", default_audience=""
            )
            legacy = [str(a) for a in items(token.get("audiences")) if a]
            if legacy and "audiences" not in sa:
                sa["audiences"] = legacy
            return {
                "jwt": {
                    "mountPath": text(body.get("path")) or "jwt",
                    "role": role,
                    "serviceAccount": sa,
                }
            }
        raise self.fail(p, "secretsync has no such Vault auth method")

    def conditions(self, conditions: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, raw in enumerate(conditions):
            cond = obj(raw)
            p = f"spec.conditions[{i}]"
            unknown(self.report, cond, {"namespaces", "namespaceSelector"}, p)
            new: dict[str, Any] = {}
            names = [str(n) for n in items(cond.get("namespaces")) if n]
            if names:
                new["namespaces"] = names
            selector = obj(cond.get("namespaceSelector"))
            if selector:
                new["namespaceSelector"] = {
                    k: v for k, v in selector.items() if k in ("matchLabels", "matchExpressions")
                }
            if new:
                out.append(new)
        if conditions and not out:
            # Dropping every condition would open the store to every namespace.
            raise self.fail(
                "spec.conditions",
                "none is expressible in secretsync; without them the store would serve "
                "every namespace",
            )
        return out


def convert(
    doc: Document, report: ObjectReport, *, aws_endpoint: str | None
) -> dict[str, Any] | None:
    """The secretsync store for an ESO store, or None (the report says why)."""
    converter = _StoreConverter(doc, report, aws_endpoint=aws_endpoint)
    try:
        spec = converter.spec()
    except Unconvertible:
        return None
    meta: dict[str, Any] = {"name": doc.name}
    if doc.namespace and doc.kind == "SecretStore":
        meta["namespace"] = doc.namespace
    labels = strings(doc.metadata.get("labels"))
    if labels:
        meta["labels"] = labels
    return {"kind": doc.kind, "metadata": meta, "spec": spec}
