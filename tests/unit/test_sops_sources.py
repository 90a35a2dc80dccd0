"""The SOPS provider's remote keys: a document in the SecretSync's namespace or in S3,
never a namespace of the key's choosing."""

from __future__ import annotations

import pytest

from secretsync.errors import ProviderConfigError
from secretsync.providers.sops import sources


@pytest.mark.parametrize(
    ("key", "source", "file_name"),
    [
        (
            "configmap/app-secrets/app.enc.yaml",
            sources.InCluster("ConfigMap", "app-secrets", "app.enc.yaml"),
            "app.enc.yaml",
        ),
        ("secret/db/db.env", sources.InCluster("Secret", "db", "db.env"), "db.env"),
        (
            "s3://team-a-config/prod/api.json",
            sources.InS3("team-a-config", "prod/api.json"),
            "api.json",
        ),
    ],
)
def test_a_remote_key_names_one_document(key: str, source: sources.Source, file_name: str) -> None:
    assert sources.parse(key) == source
    assert sources.parse(key).file_name == file_name


@pytest.mark.parametrize(
    "key",
    [
        "configmap/other-namespace/app/app.yaml",  # no namespace can be named
        "configmap/app",
        "configmap/App/app.yaml",
        "secret/db/",
        "s3://b/",
        "team-a/db",
        "",
    ],
)
def test_anything_else_is_refused_with_the_grammar(key: str) -> None:
    with pytest.raises(ProviderConfigError, match=r"use configmap/<name>/<key>"):
        sources.parse(key)


def test_a_document_is_described_without_its_contents() -> None:
    assert (
        sources.describe(sources.parse("configmap/docs/app.yaml"), "team-a")
        == "ConfigMap team-a/docs key app.yaml"
    )
    assert (
        sources.describe(sources.parse("s3://b12/x/y.env"), "team-a")
        == "S3 object s3://b12/x/y.env"
    )
