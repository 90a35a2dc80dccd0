"""An ESO store's vault provider to secretsync's: the server, the KV mount, the CA and
the auth method (token, appRole, kubernetes or jwt)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from secretsync.convert.fields import HTTP_URL, obj, text, unknown
from secretsync.convert.storecontext import (
    PUSH_ONLY,
    StoreContext,
    audiences,
    namespace_of,
    push_only,
    secret_key,
    service_account,
)

# secretsync's default audience for Vault logins. ESO asks for it only in jwt auth; its
# kubernetes auth asks for no audience (the token carries the apiserver's default one).
VAULT_AUDIENCE = "vault"
NO_AUDIENCE = (
    "unset: ESO requested the ServiceAccount token with no audience, so it carried the "
    "apiserver's default audience; secretsync requests audience 'vault' unless told "
    "otherwise, which a Vault role without `audience` rejects at TokenReview. Fix: set "
    "`audience: vault` on the Vault role, or give serviceAccount.audiences the audience "
    "the role expects"
)
PATH = "spec.provider.vault"


def mount(vault: Mapping[str, Any], version: str) -> str | None:
    """The KV mount of ESO's vault.path (which may end in /data on KV v2), or None."""
    path = text(vault.get("path"))
    if path is None:
        return None
    path = path.strip("/")
    if version == "v2" and path.endswith("/data"):
        path = path[: -len("/data")]
    return path or None


def provider(ctx: StoreContext, vault: Mapping[str, Any]) -> dict[str, Any]:
    """secretsync's spec.provider.vault for ESO's."""
    unknown(
        ctx.report,
        vault,
        {"server", "path", "version", "namespace", "caBundle", "caProvider", "auth"} | PUSH_ONLY,
        PATH,
    )
    push_only(ctx, vault, PATH)
    server = text(vault.get("server"))
    if server is None or not HTTP_URL.match(server):
        raise ctx.fail(f"{PATH}.server", "must be an http(s) URL")
    version = text(vault.get("version")) or "v2"
    if version not in ("v1", "v2"):
        raise ctx.fail(f"{PATH}.version", "must be v1 or v2")
    kv = mount(vault, version)
    if kv is None:
        raise ctx.fail(
            f"{PATH}.path",
            "unset: ESO then reads the KV mount from each remote key's first segment; "
            "secretsync needs the mount here (set path, and keys relative to it)",
        )
    out: dict[str, Any] = {"server": server, "path": kv, "version": version}
    if text(vault.get("namespace")):
        out["namespace"] = str(vault["namespace"])
    if text(vault.get("caBundle")):
        out["caBundle"] = str(vault["caBundle"])
    if vault.get("caProvider"):
        p = f"{PATH}.caProvider"
        ref = _ca_ref(ctx, obj(vault["caProvider"]), p)
        if "caBundle" in out:
            ctx.report.lose(p, "dropped: secretsync takes caBundle or caRef, not both")
        else:
            out["caRef"] = ref
    auth = obj(vault.get("auth"))
    if not auth:
        raise ctx.fail(f"{PATH}.auth", "secretsync needs an auth method")
    if text(auth.get("namespace")) not in (None, out.get("namespace")):
        ctx.report.lose(
            f"{PATH}.auth.namespace",
            "not converted: secretsync logs in within spec.provider.vault.namespace",
        )
    out["auth"] = _auth(ctx, auth, f"{PATH}.auth")
    return out


def _ca_ref(ctx: StoreContext, ca: Mapping[str, Any], path: str) -> dict[str, Any]:
    unknown(ctx.report, ca, {"type", "name", "key", "namespace"}, path)
    kind, name, key = text(ca.get("type")), text(ca.get("name")), text(ca.get("key"))
    if kind not in ("Secret", "ConfigMap") or name is None or key is None:
        raise ctx.fail(path, "needs type (Secret or ConfigMap), name and key")
    ref: dict[str, Any] = {"kind": kind, "name": name, "key": key}
    ns = namespace_of(ctx, ca, path)
    if ns is not None:
        ref["namespace"] = ns
    return ref


def _auth(ctx: StoreContext, auth: Mapping[str, Any], path: str) -> dict[str, Any]:
    methods = [k for k, v in auth.items() if v and k != "namespace"]
    if len(methods) != 1:
        raise ctx.fail(path, "needs exactly one auth method")
    method = methods[0]
    body = obj(auth[method])
    p = f"{path}.{method}"
    if method == "tokenSecretRef":
        return {"token": {"secretRef": secret_key(ctx, body, p)}}
    if method == "appRole":
        return {"appRole": _app_role(ctx, body, p)}
    if method == "kubernetes":
        return {"kubernetes": _kubernetes(ctx, body, p)}
    if method == "jwt":
        return {"jwt": _jwt(ctx, body, p)}
    raise ctx.fail(p, "secretsync has no such Vault auth method")


def _app_role(ctx: StoreContext, body: Mapping[str, Any], path: str) -> dict[str, Any]:
    unknown(ctx.report, body, {"path", "roleId", "secretRef"}, path)
    if body.get("roleRef"):
        raise ctx.fail(
            f"{path}.roleRef", "secretsync takes the role id itself (roleId), not a Secret"
        )
    role_id = text(body.get("roleId"))
    if role_id is None:
        raise ctx.fail(f"{path}.roleId", "secretsync needs the role id")
    return {
        "mountPath": text(body.get("path")) or "approle",
        "roleId": role_id,
        "secretIdRef": secret_key(ctx, body.get("secretRef"), f"{path}.secretRef"),
    }


def _kubernetes(ctx: StoreContext, body: Mapping[str, Any], path: str) -> dict[str, Any]:
    unknown(ctx.report, body, {"mountPath", "role", "serviceAccountRef"}, path)
    if not body.get("serviceAccountRef"):
        raise ctx.fail(
            path,
            "without serviceAccountRef ESO used a token from a Secret or its own; "
            "secretsync logs in with a ServiceAccount's TokenRequest token",
        )
    role = _role(ctx, body, path)
    ref = obj(body["serviceAccountRef"])
    sa = service_account(ctx, ref, f"{path}.serviceAccountRef")
    # ESO requests exactly serviceAccountRef.audiences (none: the apiserver's default).
    if audiences(ref):
        sa["audiences"] = list(dict.fromkeys(audiences(ref)))
    else:
        ctx.report.lose(f"{path}.serviceAccountRef.audiences", NO_AUDIENCE)
    return {
        "mountPath": text(body.get("mountPath")) or "kubernetes",
        "role": role,
        "serviceAccount": sa,
    }


def _jwt(ctx: StoreContext, body: Mapping[str, Any], path: str) -> dict[str, Any]:
    unknown(ctx.report, body, {"path", "role", "kubernetesServiceAccountToken"}, path)
    token = obj(body.get("kubernetesServiceAccountToken"))
    if not token:
        raise ctx.fail(
            path,
            "without kubernetesServiceAccountToken ESO read the JWT from a Secret; "
            "secretsync logs in with a ServiceAccount's TokenRequest token",
        )
    role = _role(ctx, body, path)
    tp = f"{path}.kubernetesServiceAccountToken"
    unknown(ctx.report, token, {"serviceAccountRef", "audiences"}, tp)
    ref = obj(token.get("serviceAccountRef"))
    sa = service_account(ctx, ref, f"{tp}.serviceAccountRef")
    # ESO requests serviceAccountRef.audiences, then kubernetesServiceAccountToken's
    # audiences (unset, not empty: ["vault"]).
    extra = token.get("audiences")
    wanted = audiences(ref) + (audiences(token) if isinstance(extra, list) else [VAULT_AUDIENCE])
    if wanted:
        sa["audiences"] = list(dict.fromkeys(wanted))
    else:
        ctx.report.lose(f"{tp}.audiences", NO_AUDIENCE)
    return {"mountPath": text(body.get("path")) or "jwt", "role": role, "serviceAccount": sa}


def _role(ctx: StoreContext, body: Mapping[str, Any], path: str) -> str:
    """The Vault role a kubernetes or jwt login names."""
    role = text(body.get("role"))
    if role is None:
        raise ctx.fail(f"{path}.role", "secretsync needs the Vault role")
    return role
