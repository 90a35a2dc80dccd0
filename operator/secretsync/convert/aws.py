"""An ESO store's aws provider to secretsync's: the service, the role chain and the
identity (jwt auth with a ServiceAccount, or an access key in a Secret)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secretsync.convert.fields import ROLE_ARN, defaulted, items, obj, text, unknown
from secretsync.convert.read import Document
from secretsync.convert.storecontext import (
    PUSH_ONLY,
    StoreContext,
    audiences,
    push_only,
    secret_key,
    service_account,
)

MAX_ADDITIONAL_ROLES = 4  # the CRD's maxItems
AWS_AUDIENCE = "sts.amazonaws.com"  # ESO and secretsync both ask for it
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"  # the role ESO's AWS jwt auth exchanges for
AUDIENCE_ANNOTATION = "eks.amazonaws.com/audience"  # replaces sts.amazonaws.com in ESO
PATH = "spec.provider.aws"


def jwt_service_account(doc: Document) -> tuple[str, str] | None:
    """The (namespace, name) of the ServiceAccount an AWS store's jwt auth names, when
    one namespace holds it (a ClusterSecretStore without serviceAccountRef.namespace used
    each ExternalSecret's namespace)."""
    ref = obj(obj(obj(obj(obj(doc.body.get("spec")).get("provider")).get("aws")).get("auth")))
    ref = obj(obj(ref.get("jwt")).get("serviceAccountRef"))
    name = text(ref.get("name"))
    namespace = text(ref.get("namespace")) if doc.kind == "ClusterSecretStore" else doc.namespace
    if name is None or namespace is None:
        return None
    return namespace, name


def provider(ctx: StoreContext, aws: Mapping[str, Any]) -> dict[str, Any]:
    """secretsync's spec.provider.aws for ESO's."""
    unknown(
        ctx.report,
        aws,
        {"service", "region", "role", "additionalRoles", "auth", "sessionTagsPolicy"} | PUSH_ONLY,
        PATH,
    )
    push_only(ctx, aws, PATH)
    defaulted(ctx.report, aws, "sessionTagsPolicy", {"None"}, PATH)
    service = text(aws.get("service"))
    if service not in ("SecretsManager", "ParameterStore"):
        raise ctx.fail(f"{PATH}.service", "must be SecretsManager or ParameterStore")
    region = text(aws.get("region"))
    if region is None:
        raise ctx.fail(f"{PATH}.region", "secretsync needs the region")
    out: dict[str, Any] = {"service": service, "region": region}
    if ctx.aws_endpoint:
        out["endpoint"] = ctx.aws_endpoint
    chain = _role_chain(ctx, aws)
    auth_in = obj(aws.get("auth"))
    auth = _auth(ctx, auth_in, f"{PATH}.auth")
    if "serviceAccount" in auth:
        ref = obj(obj(auth_in.get("jwt")).get("serviceAccountRef"))
        chain = _web_identity(ctx, auth["serviceAccount"], ref, chain, f"{PATH}.auth.jwt")
    if len(chain) > 1 + MAX_ADDITIONAL_ROLES:
        raise ctx.fail(
            f"{PATH}.additionalRoles",
            f"the chain has {len(chain)} roles (with the ServiceAccount's annotated role "
            "when there is one); secretsync chains at most 5",
        )
    if chain:
        out["role"] = chain[0]
    if chain[1:]:
        out["additionalRoles"] = chain[1:]
    if auth:
        out["auth"] = auth
    elif not ctx.cluster:
        raise ctx.fail(
            f"{PATH}.auth",
            "ESO used the controller's own credentials; a secretsync SecretStore must "
            "name an identity (jwt.serviceAccountRef or secretRef)",
        )
    else:
        ctx.report.lose(
            f"{PATH}.auth",
            "none: ESO used its controller's own credentials, secretsync uses its "
            "operator's: another identity unless both run as the same IAM role. Fix: "
            "grant the operator's identity the same access, or set auth",
        )
    return out


def _role_chain(ctx: StoreContext, aws: Mapping[str, Any]) -> list[str]:
    # ESO assumes additionalRoles in order, then role, on top of the credentials auth
    # gives; secretsync assumes role, then additionalRoles in order: the same chain,
    # written first to last.
    chain = [str(r) for r in items(aws.get("additionalRoles")) if r]
    if text(aws.get("role")):
        chain.append(str(aws["role"]))
    for i, arn in enumerate(chain):
        if not ROLE_ARN.match(arn):
            raise ctx.fail(
                f"{PATH}.role" if i == len(chain) - 1 else f"{PATH}.additionalRoles",
                "is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
            )
    return chain


def _web_identity(
    ctx: StoreContext, sa: dict[str, Any], ref: Mapping[str, Any], chain: list[str], path: str
) -> list[str]:
    """The chain secretsync needs for ESO's jwt auth.

    ESO exchanged the ServiceAccount's token for the role in its
    eks.amazonaws.com/role-arn annotation (AssumeRoleWithWebIdentity), then assumed
    the chain; secretsync exchanges it for the chain's first role. Read from a
    cluster, the annotated role goes first and nothing changes; otherwise it is lossy.
    """
    where = jwt_service_account(ctx.doc)
    annotations: Mapping[str, str] = {}
    if ctx.service_accounts is not None and where is not None:
        annotations = ctx.service_accounts.get(where) or {}
    wanted = [text(annotations.get(AUDIENCE_ANNOTATION)) or AWS_AUDIENCE, *audiences(ref)]
    if wanted != [AWS_AUDIENCE]:
        sa["audiences"] = list(dict.fromkeys(wanted))
    annotated = text(annotations.get(ROLE_ARN_ANNOTATION))
    if annotated is not None:
        if not ROLE_ARN.match(annotated):
            raise ctx.fail(
                path, f"the ServiceAccount's {ROLE_ARN_ANNOTATION} is not an IAM role ARN"
            )
        ctx.report.note(
            path,
            f"role is the ServiceAccount's {ROLE_ARN_ANNOTATION} (read from the cluster), "
            "which ESO exchanged the token for; ESO's role chain follows in additionalRoles",
        )
        return [annotated, *chain]
    if ctx.service_accounts is None:
        unknown_why = "which manifests do not show (--from-cluster reads it)"
    elif where is None:
        unknown_why = "read in each ExternalSecret's namespace, so it may differ per namespace"
    else:
        unknown_why = (
            f"which ServiceAccount {where[0]}/{where[1]} does not have (or it was not "
            "found): ESO could not log in with it either"
        )
    if not chain:
        raise ctx.fail(
            f"{PATH}.role",
            f"ESO took the role from the ServiceAccount's {ROLE_ARN_ANNOTATION} "
            f"annotation, {unknown_why}; secretsync needs it in {PATH}.role",
        )
    ctx.report.lose(
        path,
        f"ESO exchanged the token for the role in the ServiceAccount's {ROLE_ARN_ANNOTATION} "
        f"annotation, {unknown_why}, and then assumed role (after additionalRoles); "
        f"secretsync exchanges the token for {PATH}.role directly. Fix: set role "
        "to the annotated role and additionalRoles to ESO's additionalRoles followed by "
        "its role, or make role's trust policy trust the cluster's OIDC issuer "
        "(docs/aws-iam.md)",
    )
    return chain


def _auth(ctx: StoreContext, auth: Mapping[str, Any], path: str) -> dict[str, Any]:
    unknown(ctx.report, auth, {"jwt", "secretRef"}, path)
    if auth.get("jwt"):
        jwt = obj(auth["jwt"])
        unknown(ctx.report, jwt, {"serviceAccountRef"}, f"{path}.jwt")
        if not jwt.get("serviceAccountRef"):
            raise ctx.fail(f"{path}.jwt", "needs serviceAccountRef in secretsync")
        sa = service_account(ctx, obj(jwt["serviceAccountRef"]), f"{path}.jwt.serviceAccountRef")
        return {"serviceAccount": sa}
    if auth.get("secretRef"):
        ref = obj(auth["secretRef"])
        p = f"{path}.secretRef"
        unknown(
            ctx.report,
            ref,
            {"accessKeyIDSecretRef", "secretAccessKeySecretRef", "sessionTokenSecretRef"},
            p,
        )
        keys: dict[str, Any] = {
            "accessKeyId": secret_key(
                ctx, ref.get("accessKeyIDSecretRef"), f"{p}.accessKeyIDSecretRef"
            ),
            "secretAccessKey": secret_key(
                ctx, ref.get("secretAccessKeySecretRef"), f"{p}.secretAccessKeySecretRef"
            ),
        }
        if ref.get("sessionTokenSecretRef"):
            keys["sessionToken"] = secret_key(
                ctx, ref["sessionTokenSecretRef"], f"{p}.sessionTokenSecretRef"
            )
        return {"secretRef": keys}
    return {}
