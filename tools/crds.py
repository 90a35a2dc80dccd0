"""Generates the CustomResourceDefinitions in crds/ (run: python tools/crds.py).

The three kinds share most of their schema (a SecretStore and a
ClusterSecretStore differ only in scope and `conditions`), so they are built
from one set of pieces here rather than kept by hand in three YAML files. The
YAML in crds/ is the canonical artifact users apply; a test checks it matches
this generator, and the Helm chart's copy matches it.

Validation happens at admission: a structural OpenAPI schema for shapes and
CEL rules (`x-kubernetes-validations`) for what shapes cannot say. Every CEL
message names the field it is about, so `kubectl apply` says what to fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

Schema = dict[str, Any]

GROUP = "secretsync.io"
VERSION = "v1alpha1"
CRD_DIR = Path(__file__).resolve().parent.parent / "crds"

# Go-style durations, as Kubernetes and External Secrets users write them.
DURATION_RE = r"^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"
SECRET_KEY_RE = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a key-name pattern, not a password
FORBIDDEN_SECRET_TYPES = ("kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token")


# --- building blocks ---------------------------------------------------------


def rule(expression: str, message: str) -> Schema:
    return {"rule": expression, "message": message}


def string(
    description: str,
    *,
    max_length: int = 253,
    pattern: str | None = None,
    rules: list[Schema] | None = None,
) -> Schema:
    schema: Schema = {"type": "string", "description": description, "maxLength": max_length}
    if pattern:
        schema["pattern"] = pattern
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema


def obj(
    description: str,
    properties: Schema,
    *,
    required: list[str] | None = None,
    rules: list[Schema] | None = None,
) -> Schema:
    schema: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        schema["required"] = required
    if rules:
        schema["x-kubernetes-validations"] = rules
    return schema


def string_map(description: str, *, max_properties: int = 64) -> Schema:
    return {
        "type": "object",
        "description": description,
        "maxProperties": max_properties,
        "additionalProperties": {"type": "string", "maxLength": 4096},
    }


def duration(description: str, field: str) -> Schema:
    return string(
        description,
        max_length=32,
        rules=[
            rule(
                f"self.matches('{DURATION_RE}')",
                f'{field} must be a duration such as 30s, 15m or 1h, or "0"',
            )
        ],
    )


def exactly_one(field: str, options: list[str], *, optional: bool = False) -> Schema:
    """A CEL rule: exactly one (or, if optional, at most one) of the fields is set."""
    present = "[" + ", ".join(f"has(self.{o})" for o in options) + "]"
    names = ", ".join(options[:-1]) + " or " + options[-1]
    if optional:
        return rule(f"{present}.filter(x, x).size() <= 1", f"{field}: set at most one of {names}")
    return rule(f"{present}.exists_one(x, x)", f"{field}: set exactly one of {names}")


def no_namespace(field: str, why: str) -> Schema:
    return rule("!has(self.namespace)", f"{field}.namespace is not allowed: {why}")


class Scope:
    """What differs between a namespaced and a cluster-scoped store."""

    def __init__(self, *, namespaced: bool, kind: str) -> None:
        self.namespaced = namespaced
        self.kind = kind

    def secret_ref(self, field: str, description: str) -> Schema:
        """A key of a Secret holding a credential."""
        rules = []
        if self.namespaced:
            rules.append(
                no_namespace(field, f"a {self.kind} reads credentials from its own namespace")
            )
        ns = "Namespace of the Secret. Only in a ClusterSecretStore; default: the SecretSync's."
        return obj(
            description,
            {
                "name": string("Name of the Secret."),
                "key": string("Key inside the Secret.", pattern=SECRET_KEY_RE),
                "namespace": string(ns, max_length=63),
            },
            required=["name", "key"],
            rules=rules,
        )

    def service_account(self, field: str, default_audience: str) -> Schema:
        # Never another namespace: each namespace authenticates as itself.
        return obj(
            "A ServiceAccount whose TokenRequest token is the identity presented to the "
            "provider. It lives in the store's namespace (SecretStore) or the SecretSync's "
            "namespace (ClusterSecretStore).",
            {
                "name": string("Name of the ServiceAccount.", max_length=253),
                "audiences": {
                    "type": "array",
                    "description": f"Token audiences. Default: [{default_audience}].",
                    "maxItems": 8,
                    "items": {"type": "string", "maxLength": 253},
                },
                "namespace": string(
                    "Not allowed; present only to refuse it clearly.", max_length=63
                ),
            },
            required=["name"],
            rules=[
                no_namespace(
                    field, "the ServiceAccount always resolves in the namespace being synced"
                )
            ],
        )


# --- providers -----------------------------------------------------------------


def aws_provider(scope: Scope) -> Schema:
    schema = aws_identity(scope, "spec.provider.aws", "AWS Secrets Manager or SSM Parameter Store.")
    schema["properties"] = {
        "service": {
            "type": "string",
            "enum": ["SecretsManager", "ParameterStore"],
            "description": "Which AWS service holds the secrets.",
        },
        **schema["properties"],
    }
    schema["required"] = ["service", *schema["required"]]
    return schema


def aws_identity(scope: Scope, field: str, description: str) -> Schema:
    """Who the operator is in AWS (and where it calls), as `field`."""
    methods = ["serviceAccount", "secretRef"]
    auth_rules = [exactly_one(f"{field}.auth", methods, optional=not scope.namespaced)]
    auth = obj(
        "How the operator authenticates to AWS."
        + (
            ""
            if scope.namespaced
            else " Empty: the operator's own ambient credentials (ClusterSecretStore only)."
        ),
        {
            "serviceAccount": scope.service_account(
                f"{field}.auth.serviceAccount", "sts.amazonaws.com"
            ),
            "secretRef": obj(
                "Static access keys read from a Secret.",
                {
                    "accessKeyId": scope.secret_ref(
                        f"{field}.auth.secretRef.accessKeyId", "The access key id."
                    ),
                    "secretAccessKey": scope.secret_ref(
                        f"{field}.auth.secretRef.secretAccessKey", "The secret access key."
                    ),
                    "sessionToken": scope.secret_ref(
                        f"{field}.auth.secretRef.sessionToken", "An optional session token."
                    ),
                },
                required=["accessKeyId", "secretAccessKey"],
            ),
        },
        rules=auth_rules,
    )
    role_arn = string(
        "IAM role ARN to assume.",
        max_length=2048,
        rules=[
            rule(
                "self.matches('^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$')",
                f"{field}.role must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
            )
        ],
    )
    return obj(
        description,
        {
            "region": string("AWS region, e.g. eu-west-1.", max_length=32),
            "endpoint": string(
                "Endpoint URL override (VPC endpoints, emulators).",
                max_length=2048,
                rules=[
                    rule(
                        "self.startsWith('https://') || self.startsWith('http://')",
                        f"{field}.endpoint must be an http(s) URL",
                    )
                ],
            ),
            "role": role_arn,
            "additionalRoles": {
                "type": "array",
                "description": "Roles assumed in order after `role` (role chaining).",
                "maxItems": 4,
                "items": role_arn,
            },
            "auth": auth,
        },
        required=["region", *(["auth"] if scope.namespaced else [])],
        rules=[
            rule(
                "!has(self.auth) || !has(self.auth.serviceAccount) || has(self.role)",
                f"{field}.role is required with auth.serviceAccount: it is the role the "
                "ServiceAccount's token is exchanged for",
            )
        ],
    )


def vault_provider(scope: Scope) -> Schema:
    schema = vault_connection(
        scope, "spec.provider.vault", "HashiCorp Vault or OpenBao, KV secrets engine."
    )
    schema["properties"] = {
        **schema["properties"],
        "path": string("Mount path of the KV engine. Default: secret.", max_length=253),
        "version": {
            "type": "string",
            "enum": ["v1", "v2"],
            "description": "KV engine version. Default: v2.",
        },
    }
    return schema


def vault_connection(scope: Scope, field: str, description: str) -> Schema:
    """Which Vault, trusted how, logged in to as whom, as `field`."""
    mount = string("Mount path of the auth method.", max_length=253)
    auth = obj(
        "How the operator logs in to Vault.",
        {
            "kubernetes": obj(
                "Kubernetes auth with a TokenRequest token of the ServiceAccount.",
                {
                    "mountPath": mount,
                    "role": string("Vault role to log in as.", max_length=253),
                    "serviceAccount": scope.service_account(
                        f"{field}.auth.kubernetes.serviceAccount", "vault"
                    ),
                },
                required=["role", "serviceAccount"],
            ),
            "appRole": obj(
                "AppRole auth.",
                {
                    "mountPath": mount,
                    "roleId": string("The AppRole role id (not a secret).", max_length=253),
                    "secretIdRef": scope.secret_ref(
                        f"{field}.auth.appRole.secretIdRef", "The AppRole secret id."
                    ),
                },
                required=["roleId", "secretIdRef"],
            ),
            "jwt": obj(
                "JWT auth with a TokenRequest token of the ServiceAccount.",
                {
                    "mountPath": mount,
                    "role": string("Vault role to log in as.", max_length=253),
                    "serviceAccount": scope.service_account(
                        f"{field}.auth.jwt.serviceAccount", "vault"
                    ),
                },
                required=["role", "serviceAccount"],
            ),
            "token": obj(
                "A Vault token read from a Secret.",
                {"secretRef": scope.secret_ref(f"{field}.auth.token.secretRef", "The token.")},
                required=["secretRef"],
            ),
        },
        rules=[exactly_one(f"{field}.auth", ["kubernetes", "appRole", "jwt", "token"])],
    )
    ca_ref_rules = []
    if scope.namespaced:
        ca_ref_rules.append(
            no_namespace(f"{field}.caRef", f"a {scope.kind} reads its CA from its own namespace")
        )
    return obj(
        description,
        {
            "server": string(
                "Vault address.",
                max_length=2048,
                rules=[
                    rule(
                        "self.startsWith('https://') || self.startsWith('http://')",
                        f"{field}.server must be an http(s) URL",
                    )
                ],
            ),
            "caBundle": string("Base64 PEM CA bundle to trust.", max_length=65536),
            "caRef": obj(
                "A ConfigMap or Secret key holding the PEM CA bundle.",
                {
                    "kind": {"type": "string", "enum": ["ConfigMap", "Secret"]},
                    "name": string("Name of the object."),
                    "key": string("Key inside it.", pattern=SECRET_KEY_RE),
                    "namespace": string(
                        "Namespace of the object. Only in a ClusterSecretStore.", max_length=63
                    ),
                },
                required=["kind", "name", "key"],
                rules=ca_ref_rules,
            ),
            "namespace": string(
                "Vault Enterprise namespace (not a Kubernetes one).", max_length=253
            ),
            "auth": auth,
        },
        required=["server", "auth"],
        rules=[
            rule(
                "!(has(self.caBundle) && has(self.caRef))",
                f"{field}: set at most one of caBundle or caRef",
            )
        ],
    )


def sops_provider(scope: Scope) -> Schema:
    field = "spec.provider.sops"
    return obj(
        "SOPS-encrypted documents (docs/providers/sops.md). A remote key names the document: "
        "configmap/<name>/<key> or secret/<name>/<key> in the SecretSync's namespace, or "
        "s3://<bucket>/<object> read as `aws`. Its data key is unwrapped with `age`, AWS KMS "
        "(as `aws`) or Vault transit (as `vault`), whichever the document and the store share.",
        {
            "age": obj(
                "age identities, for documents encrypted to age recipients.",
                {
                    "secretRef": scope.secret_ref(
                        f"{field}.age.secretRef",
                        "A Secret key holding an age key file (AGE-SECRET-KEY-1... lines).",
                    )
                },
                required=["secretRef"],
            ),
            "aws": aws_identity(
                scope,
                f"{field}.aws",
                "The AWS identity that decrypts with KMS and reads S3 documents.",
            ),
            "vault": vault_connection(
                scope, f"{field}.vault", "The Vault (or OpenBao) login that decrypts with transit."
            ),
        },
        rules=[
            rule(
                "has(self.age) || has(self.aws) || has(self.vault)",
                f"{field}: set at least one of age, aws or vault (how data keys are unwrapped)",
            ),
            rule(
                "!(has(self.aws) && has(self.vault))",
                f"{field}: set at most one of aws or vault (a store logs in as one identity)",
            ),
        ],
    )


def plugin_provider(scope: Scope) -> Schema:
    field = "spec.provider.plugin"
    return obj(
        "A provider installed as a Python package in the operator's image "
        "(docs/providers/plugins.md).",
        {
            "name": string(
                "The provider's entry-point name (group secretsync.providers).",
                max_length=63,
                pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
                rules=[
                    rule(
                        "!(self in ['aws', 'vault', 'sops'])",
                        f"{field}.name: aws, vault and sops are built in: use spec.provider.<name>",
                    )
                ],
            ),
            "serviceAccount": scope.service_account(f"{field}.serviceAccount", "<name>"),
            "config": {
                "type": "object",
                "description": "The plug-in's own settings; it validates them.",
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
        required=["name"],
    )


def store_spec(scope: Scope) -> Schema:
    properties: Schema = {
        "provider": obj(
            "The secret manager and the identity used to read it.",
            {
                "aws": aws_provider(scope),
                "vault": vault_provider(scope),
                "sops": sops_provider(scope),
                "plugin": plugin_provider(scope),
            },
            rules=[exactly_one("spec.provider", ["aws", "vault", "sops", "plugin"])],
        ),
        "refreshBudget": obj(
            "Provider calls this store may make; syncs queue behind the budget.",
            {
                "callsPerSecond": {"type": "number", "minimum": 0.01, "maximum": 10000},
                "burst": {"type": "integer", "minimum": 1, "maximum": 100000},
            },
        ),
        "changeCheckInterval": duration(
            'Cheap version checks between full refreshes; "0" turns them off.',
            "spec.changeCheckInterval",
        ),
        "events": obj(
            "Rotation events the operator listens to for this store.",
            {
                "sqs": obj(
                    "An SQS queue fed by EventBridge, read with the store's identity.",
                    {
                        "queueUrl": string(
                            "The queue URL.",
                            max_length=2048,
                            rules=[
                                rule(
                                    "self.startsWith('https://') || self.startsWith('http://')",
                                    "spec.events.sqs.queueUrl must be an http(s) URL",
                                )
                            ],
                        )
                    },
                    required=["queueUrl"],
                )
            },
        ),
    }
    if not scope.namespaced:
        properties["conditions"] = {
            "type": "array",
            "description": "Namespaces allowed to use this store; empty: all.",
            "maxItems": 32,
            "items": obj(
                "Namespaces listed by name or selected by labels.",
                {
                    "namespaces": {
                        "type": "array",
                        "maxItems": 256,
                        "items": {"type": "string", "maxLength": 63},
                    },
                    "namespaceSelector": label_selector(),
                },
                rules=[
                    rule(
                        "has(self.namespaces) || has(self.namespaceSelector)",
                        "spec.conditions[]: set namespaces or namespaceSelector",
                    )
                ],
            ),
        }
    return obj("Where secrets come from and as whom.", properties, required=["provider"])


def label_selector() -> Schema:
    return obj(
        "A Kubernetes label selector.",
        {
            "matchLabels": string_map("Labels that must match exactly."),
            "matchExpressions": {
                "type": "array",
                "maxItems": 32,
                "items": obj(
                    "A label requirement.",
                    {
                        "key": string("Label key."),
                        "operator": {
                            "type": "string",
                            "enum": ["In", "NotIn", "Exists", "DoesNotExist"],
                        },
                        "values": {
                            "type": "array",
                            "maxItems": 64,
                            "items": {"type": "string", "maxLength": 63},
                        },
                    },
                    required=["key", "operator"],
                ),
            },
        },
    )


# --- SecretSync ----------------------------------------------------------------


def string_list(description: str) -> Schema:
    return {
        "type": "array",
        "maxItems": 64,
        "description": description,
        "items": {"type": "string", "maxLength": 253},
    }


def secret_sync_spec() -> Schema:
    same_ns = "a SecretSync only refers to objects in its own namespace"
    remote_ref = obj(
        "Which remote secret to read.",
        {
            "key": string("Remote key: a name, ARN, parameter name or path.", max_length=2048),
            "property": string("A dotted path into the JSON value.", max_length=1024),
            "version": string("A version id, or a stage/label such as AWSCURRENT.", max_length=256),
        },
        required=["key"],
    )
    data_item = obj(
        "One remote value into one Secret key.",
        {
            "secretKey": string(
                "Key in the target Secret.",
                rules=[
                    rule(
                        f"self.matches('{SECRET_KEY_RE}')",
                        "spec.data[].secretKey must consist of alphanumerics, '-', '_' or '.'",
                    )
                ],
            ),
            "remoteRef": remote_ref,
        },
        required=["secretKey", "remoteRef"],
    )
    data_from_item = obj(
        "Many remote values at once.",
        {
            "extract": obj(
                "Every top-level key of a JSON secret (or every parameter under a path).",
                {
                    "key": string("Remote key.", max_length=2048),
                    "property": string(
                        "A dotted path to the JSON object to extract.", max_length=1024
                    ),
                    "version": string("A version id, stage or label.", max_length=256),
                },
                required=["key"],
            ),
            "find": obj(
                "Every remote secret matching all the criteria.",
                {
                    "path": string("Name or path prefix.", max_length=2048),
                    "name": obj(
                        "Name criteria.",
                        {
                            "regexp": string(
                                "A regular expression the name matches.", max_length=1024
                            )
                        },
                        required=["regexp"],
                    ),
                    "tags": string_map("Tags the secret carries (AWS only)."),
                },
                rules=[
                    rule(
                        "has(self.path) || has(self.name) || has(self.tags)",
                        "spec.dataFrom[].find: set at least one of path, name or tags",
                    )
                ],
            ),
        },
        rules=[exactly_one("spec.dataFrom[]", ["extract", "find"])],
    )
    target = obj(
        "The Secret to write.",
        {
            "name": string("Secret name. Default: the SecretSync's name."),
            "type": string(
                "Secret type. Default: Opaque.",
                rules=[
                    rule(
                        "!(self in " + repr(list(FORBIDDEN_SECRET_TYPES)) + ")",
                        "spec.target.type may not be a service-account-token or bootstrap "
                        "token type: those Secrets grant cluster access",
                    )
                ],
            ),
            "creationPolicy": {
                "type": "string",
                "enum": ["Owner", "Orphan", "Merge"],
                "description": "Owner (default): the Secret is owned and deleted with the "
                "SecretSync. Orphan: it outlives it. Merge: write into an existing Secret.",
            },
            "deletionPolicy": {
                "type": "string",
                "enum": ["Retain", "Delete"],
                "description": "When the remote secret disappears. Default: Retain.",
            },
            "immutable": {"type": "boolean", "description": "Write an immutable Secret."},
            "labels": string_map("Labels for the Secret."),
            "annotations": string_map("Annotations for the Secret."),
            "template": obj(
                "Jinja2 templates rendered over the fetched values, in a sandbox.",
                {"data": string_map("Secret key -> template.", max_properties=256)},
            ),
        },
    )
    workload = obj(
        "A workload in the SecretSync's namespace.",
        {
            "kind": {"type": "string", "enum": ["Deployment", "StatefulSet", "DaemonSet"]},
            "name": string("Name of the workload."),
            "namespace": string("Not allowed; present only to refuse it clearly.", max_length=63),
        },
        required=["kind", "name"],
        rules=[no_namespace("spec.rollout.restart[]", same_ns)],
    )
    dynamic = obj(
        "Credentials issued by a Vault secrets engine that answers with a lease (database, "
        "aws, rabbitmq...): renewed, re-issued before they expire and revoked "
        "(docs/vault.md). The Secret gets one key per field of the response's data.",
        {
            "path": string(
                "The Vault path that issues them, mount included: database/creds/app.",
                max_length=1024,
                rules=[
                    rule(
                        "!self.startsWith('/') && !self.endsWith('/') && !self.contains('//')",
                        "spec.dynamic.path must be a Vault path without leading, trailing or "
                        "doubled '/'",
                    )
                ],
            ),
            "method": {
                "type": "string",
                "enum": ["GET", "POST"],
                "description": "GET (default) or POST with the parameters as its body.",
            },
            "parameters": string_map("Request parameters (query for GET, body for POST)."),
        },
        required=["path"],
    )
    certificate = obj(
        "A certificate issued by a Vault PKI mount, written as a kubernetes.io/tls Secret "
        "(tls.crt with the chain, tls.key, ca.crt) and issued anew at "
        "spec.lease.renewPercent of its lifetime.",
        {
            "mount": string("The PKI mount. Default: pki.", max_length=256),
            "role": string("The PKI role that issues it.", max_length=256),
            "commonName": string("The certificate's common name."),
            "altNames": string_list("DNS or email subject alternative names."),
            "ipSans": string_list("IP subject alternative names."),
            "uriSans": string_list("URI subject alternative names."),
            "ttl": duration(
                "Requested lifetime (the role's max TTL caps it). Default: the role's TTL.",
                "spec.certificate.ttl",
            ),
        },
        required=["role", "commonName"],
    )
    lease = obj(
        "How issued credentials are kept (spec.dynamic, spec.certificate).",
        {
            "renewPercent": {
                "type": "integer",
                "minimum": 10,
                "maximum": 90,
                "description": "Renew (or, when it can be renewed no more, issue anew) when "
                "this share of the lease's TTL has passed. Default: 67.",
            },
            "revokeGracePeriod": duration(
                "How long credentials replaced by new ones keep working before they are "
                "revoked, for workloads to pick up the new ones. Default: 2m.",
                "spec.lease.revokeGracePeriod",
            ),
            "revokeOnDelete": {
                "type": "boolean",
                "description": "Revoke the lease (and a certificate) when the SecretSync is "
                "deleted. Default: true.",
            },
        },
    )
    has_data = (
        "((has(self.data) && size(self.data) > 0) || "
        "(has(self.dataFrom) && size(self.dataFrom) > 0))"
    )
    return obj(
        "What to fetch and which Secret to write.",
        {
            "storeRef": obj(
                "The store to read from.",
                {
                    "name": string("Name of the store."),
                    "kind": {
                        "type": "string",
                        "enum": ["SecretStore", "ClusterSecretStore"],
                        "description": "Default: SecretStore.",
                    },
                    "namespace": string(
                        "Not allowed; present only to refuse it clearly.", max_length=63
                    ),
                },
                required=["name"],
                rules=[no_namespace("spec.storeRef", same_ns)],
            ),
            "refreshInterval": duration(
                'How often to re-read the remote values; "0" syncs once. Default: 1h.',
                "spec.refreshInterval",
            ),
            "target": target,
            "data": {"type": "array", "maxItems": 256, "items": data_item},
            "dataFrom": {"type": "array", "maxItems": 32, "items": data_from_item},
            "rollout": obj(
                "Workloads restarted when the synced data changes.",
                {"restart": {"type": "array", "maxItems": 32, "items": workload}},
            ),
            "dynamic": dynamic,
            "certificate": certificate,
            "lease": lease,
        },
        required=["storeRef"],
        rules=[
            rule(
                f"[{has_data}, has(self.dynamic), has(self.certificate)].exists_one(x, x)",
                "spec: set exactly one of data/dataFrom (values read from the store), "
                "dynamic (credentials issued with a lease) or certificate (a PKI certificate)",
            ),
            rule(
                "!has(self.lease) || has(self.dynamic) || has(self.certificate)",
                "spec.lease applies to issued credentials only: set dynamic or certificate",
            ),
            rule(
                "!has(self.certificate) || !has(self.target) || !has(self.target.type) || "
                "self.target.type == 'kubernetes.io/tls'",
                "spec.target.type: a certificate is written as a kubernetes.io/tls Secret",
            ),
        ],
    )


# --- status and CRD envelope ---------------------------------------------------------


def conditions() -> Schema:
    return {
        "type": "array",
        "description": "Standard conditions; `Ready` is the one to watch.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": obj(
            "A condition.",
            {
                "type": string("Condition type.", max_length=316),
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "reason": string("Machine-readable reason, UpperCamel.", max_length=1024),
                "message": string("What happened, for people.", max_length=32768),
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
            },
            required=["type", "status"],
        ),
    }


def sync_status() -> Schema:
    return obj(
        "What the operator last did; never any secret value.",
        {
            "conditions": conditions(),
            "observedGeneration": {"type": "integer", "format": "int64"},
            "lastSyncTime": {"type": "string", "format": "date-time"},
            "syncedVersions": {
                "type": "object",
                "description": "Provider version per remote key.",
                "additionalProperties": {"type": "string"},
            },
            "dataHash": {
                "type": "string",
                "description": "Keyed hash of the written data, for no-op and drift detection.",
            },
            "lease": obj(
                "Issued credentials: when they expire and how often they were renewed "
                "(never a lease id).",
                {
                    "expiresAt": {"type": "string", "format": "date-time"},
                    "nextRenewalAt": {
                        "type": "string",
                        "format": "date-time",
                        "description": "When they are renewed, or issued anew.",
                    },
                    "renewals": {"type": "integer", "format": "int64"},
                    "reissues": {"type": "integer", "format": "int64"},
                },
            ),
        },
    )


def store_status() -> Schema:
    return obj(
        "Whether the store is usable.",
        {"conditions": conditions(), "observedGeneration": {"type": "integer", "format": "int64"}},
    )


READY = '.status.conditions[?(@.type=="Ready")]'


def crd(
    *,
    kind: str,
    plural: str,
    short: list[str],
    namespaced: bool,
    spec: Schema,
    status: Schema,
    columns: list[Schema],
) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "secretsync"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["secretsync-all"],
            },
            "scope": "Namespaced" if namespaced else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Ready", "type": "string", "jsonPath": f"{READY}.status"},
                        {"name": "Reason", "type": "string", "jsonPath": f"{READY}.reason"},
                        *(
                            [
                                {
                                    "name": "Last Sync",
                                    "type": "date",
                                    "jsonPath": ".status.lastSyncTime",
                                }
                            ]
                            if kind == "SecretSync"
                            else []
                        ),
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": spec["description"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }


def build() -> dict[str, Schema]:
    """Every CRD, keyed by the file name it is written to."""
    service = {"name": "Service", "type": "string", "jsonPath": ".spec.provider.aws.service"}
    stores = {
        "SecretStore": ("secretstores", ["sstore"], True),
        "ClusterSecretStore": ("clustersecretstores", ["csstore"], False),
    }
    out = {
        f"{GROUP}_secretsyncs.yaml": crd(
            kind="SecretSync",
            plural="secretsyncs",
            short=["ssync"],
            namespaced=True,
            spec=secret_sync_spec(),
            status=sync_status(),
            columns=[{"name": "Store", "type": "string", "jsonPath": ".spec.storeRef.name"}],
        )
    }
    for kind, (plural, short, namespaced) in stores.items():
        out[f"{GROUP}_{plural}.yaml"] = crd(
            kind=kind,
            plural=plural,
            short=short,
            namespaced=namespaced,
            spec=store_spec(Scope(namespaced=namespaced, kind=kind)),
            status=store_status(),
            columns=[service],
        )
    return out


HEADER = "# Generated by tools/crds.py; edit the generator, then run `make crds`.\n"


def render(doc: Schema) -> str:
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if crds/ is out of date")
    args = parser.parse_args()
    stale = []
    for name, doc in build().items():
        path = CRD_DIR / name
        text = render(doc)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            CRD_DIR.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date, run `make crds`: " + ", ".join(stale), file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
