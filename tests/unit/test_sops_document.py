"""The SOPS document format (secretsync.providers.sops.document) against the real sops CLI.

Every document here is encrypted by sops 3.13.3 itself (tests/harness/sopscli.py) with
an age key generated for the test; nothing is hand-written ciphertext. Each good
document must decrypt to exactly what `sops decrypt` prints; each tampered one must be
refused by both, ours with its own message, which never holds a value, the data key
or ciphertext.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyrage
import pytest

from harness import sopscli
from secretsync.errors import ProviderAuthError, ProviderError
from secretsync.providers.sops import document
from secretsync.providers.sops.document import Format, SopsDocumentError

FIXTURES = Path(__file__).parent / "fixtures" / "sops"
WHERE = "ConfigMap team-a/app-secrets key secrets.yaml"
# Leaf values of the fixtures that must never appear in an error message.
SECRETS = (
    "db.internal",
    "db-ro.internal",
    "billing",
    "visible in git",
    "hunter2",
    "postgres://",
    "line one",
    "launch",
    "héllo",
    "example.test",
    "abc-123",
    "YmlsbGluZw==",
)


@dataclasses.dataclass(frozen=True)
class AgeKey:
    identity: bytes  # the key file's text
    recipient: str


def _age_key() -> AgeKey:
    identity = pyrage.x25519.Identity.generate()
    return AgeKey(f"# test key\n{identity}\n".encode(), str(identity.to_public()))


@pytest.fixture(scope="module")
def key() -> AgeKey:
    return _age_key()


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def encrypt(plain: bytes, fmt: str, key: AgeKey, *extra: str) -> bytes:
    return sopscli.encrypt(plain, fmt=fmt, age_recipients=[key.recipient], extra_args=extra)


def open_doc(raw: bytes, fmt: Format, key: AgeKey) -> document.Decrypted:
    doc = document.parse(raw, fmt, where=WHERE)
    data_key = document.unwrap_age(doc.age, key.identity, where=WHERE)
    return document.decrypt(doc, data_key, where=WHERE)


def data_key_of(raw: bytes, fmt: Format, key: AgeKey) -> bytes:
    return document.unwrap_age(document.parse(raw, fmt, where=WHERE).age, key.identity, where=WHERE)


def assert_matches_sops(raw: bytes, fmt: Format, key: AgeKey) -> document.Decrypted:
    decrypted = open_doc(raw, fmt, key)
    theirs = sopscli.decrypt(raw, fmt=fmt.value, age_identities=key.identity)
    assert decrypted.plaintext() == theirs
    return decrypted


# --- good documents: byte-for-byte what sops prints ----------------------------------------


def test_yaml_document_prints_as_sops_prints_it_with_every_leaf_type(key: AgeKey) -> None:
    raw = encrypt(fixture("app.yaml"), "yaml", key)
    decrypted = assert_matches_sops(raw, Format.YAML, key)
    tree = decrypted.tree
    assert tree["database"] == {
        "host": "db.internal",
        "port": 5432,
        "replica": "db-ro.internal",
        "pool": 0.75,
        "tls": True,
        "timeout": None,
        "weights": [1, 2.5],
    }
    assert tree["features"] == [
        "search",
        42,
        1.0,
        False,
        {"name": "beta", "enabled": "yes"},
        [],
        {},
    ]
    assert isinstance(tree["features"][2], float)
    assert tree["empty"] == ""
    assert tree["nothing"] is None
    assert tree["greeting"] == "héllo wörld ✓"
    assert tree["emoji"] == "launch 🚀"
    assert tree["motd"] == "Welcome,\nmulti-line text\nwith \"quotes\" and 'apostrophes'\n"
    assert tree["folded"] == "one two\n"
    assert tree["on"] == "off"
    assert tree["quoted_number"] == "8080"
    assert tree["started"] == datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    assert tree["updated"] == datetime.datetime(2024, 5, 1, 10, 20, 30, 500000, tzinfo=datetime.UTC)
    assert tree["hex"] == 31
    assert tree["big"] == 1e21
    assert tree["note_unencrypted"] == "visible in git"
    assert list(tree) == [
        "database", "features", "empty", "nothing", "greeting", "emoji", "motd", "folded",
        "trailing_spaces", "quoted_number", "on", "started", "updated", "hex", "big", "colon",
        "note_unencrypted",
    ]  # fmt: skip
    # sops's printing, which ours follows: 4-space indent, comments kept, Go's spellings.
    text = decrypted.plaintext().decode()
    assert "    # the replica only reads\n    # an inline comment\n    replica:" in text
    assert '"on": "off"' in text
    assert 'emoji: "launch \\U0001F680"' in text
    assert "big: 1e+21\n" in text
    assert "# the end\n" in text


def test_yaml_written_as_sops_writes_it_decrypts_to_the_original_bytes(key: AgeKey) -> None:
    plain = fixture("secret-manifest.yaml")
    raw = encrypt(plain, "yaml", key)
    assert assert_matches_sops(raw, Format.YAML, key).plaintext() == plain


def test_json_document_decrypts_to_the_original_bytes(key: AgeKey) -> None:
    plain = fixture("app.json")
    raw = encrypt(plain, "json", key)
    decrypted = assert_matches_sops(raw, Format.JSON, key)
    assert decrypted.plaintext() == plain
    assert decrypted.tree["port"] == 8443
    assert decrypted.tree["ratio"] == 0.25
    assert decrypted.tree["limits"] == {"cpu": "500m", "memory": 1024}
    assert decrypted.tree["html"] == "<b>&</b>"
    assert decrypted.tree["owner"] is None


def test_json_numbers_print_in_gos_spelling(key: AgeKey) -> None:
    plain = b'{"a": 1.0, "b": 1e21, "c": 1e-7, "d": 123456789012345678901, "e": -0.5}'
    decrypted = assert_matches_sops(encrypt(plain, "json", key), Format.JSON, key)
    assert decrypted.tree == {"a": 1.0, "b": 1e21, "c": 1e-7, "d": 1.2345678901234568e20, "e": -0.5}


def test_dotenv_document_decrypts_to_the_original_bytes_even_when_not_utf8(key: AgeKey) -> None:
    plain = fixture("app.env") + b"LATIN1=caf\xe9\n"
    raw = encrypt(plain, "dotenv", key)
    assert b"sops_mac=" in raw
    assert b"sops_age__list_0__map_recipient=" in raw
    decrypted = assert_matches_sops(raw, Format.DOTENV, key)
    assert decrypted.plaintext() == plain
    assert decrypted.tree["MOTD"] == "line one\nline two"
    assert decrypted.tree["EMPTY"] == ""
    assert decrypted.tree["LATIN1"] == b"caf\xe9"
    assert decrypted.tree["NOTE_unencrypted"] == "visible in git"


def test_binary_document_decrypts_to_the_original_bytes(key: AgeKey) -> None:
    blob = bytes(range(256)) + b"\xff\xfe\x00 not UTF-8 \xc3\x28\n"
    raw = encrypt(blob, "binary", key)
    assert raw.lstrip().startswith(b"{")
    assert b'"data": "ENC[' in raw
    decrypted = assert_matches_sops(raw, Format.BINARY, key)
    assert decrypted.plaintext() == blob
    assert decrypted.tree is None


def test_yaml_file_of_several_documents_gives_one_tree_per_document(key: AgeKey) -> None:
    plain = b"a: 1\n---\n# second\nb: two\n"
    decrypted = assert_matches_sops(encrypt(plain, "yaml", key), Format.YAML, key)
    assert decrypted.tree == [{"a": 1}, {"b": "two"}]


def test_a_document_decrypts_twice_from_one_parse(key: AgeKey) -> None:
    raw = encrypt(b"a: b\n", "yaml", key)
    doc = document.parse(raw, Format.YAML, where=WHERE)
    data_key = document.unwrap_age(doc.age, key.identity, where=WHERE)
    first = document.decrypt(doc, data_key, where=WHERE)
    assert document.decrypt(doc, data_key, where=WHERE).plaintext() == first.plaintext()


# --- which leaves are encrypted: suffixes, regexes, comments ------------------------------


def _plain_leaves(raw: bytes) -> set[str]:
    """Keys whose value the encrypted YAML holds in the clear."""
    return {m.group(1).decode() for m in re.finditer(rb"(?m)^\s*([\w-]+): (?!ENC\[)\S", raw)}


@pytest.mark.parametrize(
    ("args", "clear", "hidden"),
    [
        (("--unencrypted-suffix", "_unencrypted"), {"note_unencrypted"}, {"host", "port"}),
        (("--unencrypted-regex", "^(host|port)$"), {"host", "port"}, {"replica", "greeting"}),
        (("--encrypted-suffix", "_spaces"), {"host", "greeting"}, {"trailing_spaces"}),
        (("--encrypted-regex", "^(database)$"), {"greeting", "emoji"}, {"host", "pool"}),
    ],
    ids=["unencrypted-suffix", "unencrypted-regex", "encrypted-suffix", "encrypted-regex"],
)
def test_encryption_rules_leave_leaves_in_the_clear_as_sops_does(
    key: AgeKey, args: tuple[str, ...], clear: set[str], hidden: set[str]
) -> None:
    raw = encrypt(fixture("app.yaml"), "yaml", key, *args)
    in_clear = _plain_leaves(raw)
    assert clear <= in_clear
    assert not hidden & in_clear
    assert_matches_sops(raw, Format.YAML, key)


def test_kubernetes_secret_with_encrypted_data_only(key: AgeKey) -> None:
    plain = fixture("secret-manifest.yaml")
    raw = encrypt(plain, "yaml", key, "--encrypted-regex", "^(data|stringData)$")
    assert b"name: app-credentials" in raw
    assert b"        # who reads it\n" in raw
    assert b"YmlsbGluZw==" not in raw
    assert b"postgres://" not in raw
    decrypted = assert_matches_sops(raw, Format.YAML, key)
    assert decrypted.plaintext() == plain
    assert decrypted.tree["data"] == {"username": "YmlsbGluZw=="}
    assert decrypted.tree["metadata"]["labels"] == {"app": "billing"}


def test_encrypted_suffix_on_nested_keys(key: AgeKey) -> None:
    raw = encrypt(fixture("suffixes.yaml"), "yaml", key, "--encrypted-suffix", "_private")
    assert b"region: eu-west-1" in raw
    assert b"motd: hello" in raw
    decrypted = assert_matches_sops(raw, Format.YAML, key)
    assert decrypted.tree["public"] == {"motd": "hello", "motd_private": "abc-123"}
    assert decrypted.tree["timeout_private"] == 30


@pytest.mark.parametrize(
    "args",
    [
        ("--mac-only-encrypted", "--encrypted-regex", "^data$"),
        ("--encrypted-comment-regex", "sops:enc"),
        ("--unencrypted-comment-regex", "sops:plain"),
    ],
    ids=["mac-only-encrypted", "encrypted-comment-regex", "unencrypted-comment-regex"],
)
def test_comment_rules_and_mac_only_encrypted(key: AgeKey, args: tuple[str, ...]) -> None:
    plain = (
        b"kind: Secret # plain\ndata:\n    # sops:enc\n    pin: 1234\n    # sops:plain\n"
        b"    user: admin\n    other: x\n"
    )
    assert_matches_sops(encrypt(plain, "yaml", key, *args), Format.YAML, key)


def test_mac_only_encrypted_lets_clear_values_change(key: AgeKey) -> None:
    raw = encrypt(
        fixture("secret-manifest.yaml"), "yaml", key,
        "--mac-only-encrypted", "--encrypted-regex", "^(data|stringData)$",
    )  # fmt: skip
    changed = raw.replace(b"namespace: team-a", b"namespace: team-b")
    assert open_doc(changed, Format.YAML, key).tree["metadata"]["namespace"] == "team-b"
    assert sopscli.decrypt_process(changed, fmt="yaml", age_identities=key.identity).returncode == 0


def test_single_key_group_decrypts(key: AgeKey) -> None:
    # sops writes one group as top-level keys; it reads the key_groups layout too.
    raw = json.loads(encrypt(fixture("app.json"), "json", key))
    raw["sops"]["key_groups"] = [{"age": raw["sops"].pop("age")}]
    grouped = json.dumps(raw).encode()
    assert_matches_sops(grouped, Format.JSON, key)


# --- the metadata: which keys wrap the data key ---------------------------------------------


def test_age_stanzas_and_other_key_kinds_are_read(key: AgeKey) -> None:
    second = _age_key()
    raw = sopscli.encrypt(b"a: b\n", fmt="yaml", age_recipients=[key.recipient, second.recipient])
    # The metadata is not covered by the MAC: extra stanzas can be added beside age's.
    blob = base64.b64encode(b"kms-ciphertext-blob").decode()
    raw = raw.replace(
        b"sops:\n",
        (
            "sops:\n"
            "    kms:\n"
            "        - arn: arn:aws:kms:eu-west-1:111122223333:key/abc\n"
            "          role: arn:aws:iam::111122223333:role/sops\n"
            "          context:\n"
            "              app: billing\n"
            '          created_at: "2024-05-01T10:00:00Z"\n'
            f"          enc: {blob}\n"
            '          aws_profile: ""\n'
            "    hc_vault:\n"
            "        - vault_address: https://vault.example.test:8200\n"
            "          engine_path: transit\n"
            "          key_name: sops\n"
            '          created_at: "2024-05-01T10:00:00Z"\n'
            "          enc: vault:v1:abc\n"
            "    pgp:\n"
            '        - created_at: "2024-05-01T10:00:00Z"\n'
            "          enc: x\n"
            "          fp: ABCDEF\n"
        ).encode(),
    )
    doc = document.parse(raw, Format.YAML, where=WHERE)
    assert [s.recipient for s in doc.age] == [key.recipient, second.recipient]
    assert doc.age[0].enc.startswith("-----BEGIN AGE ENCRYPTED FILE-----")
    assert doc.kms == (
        document.KmsStanza(
            arn="arn:aws:kms:eu-west-1:111122223333:key/abc",
            enc=b"kms-ciphertext-blob",
            context={"app": "billing"},
            role="arn:aws:iam::111122223333:role/sops",
        ),
    )
    assert doc.transit == (
        document.TransitStanza(
            "https://vault.example.test:8200", "transit", "sops", "vault:v1:abc"
        ),
    )
    assert doc.other_keys == ("pgp",)
    # Either age identity opens it.
    assert document.decrypt(
        doc, document.unwrap_age(doc.age, second.identity, where=WHERE), where=WHERE
    ).tree == {"a": "b"}


def test_format_follows_the_file_name_as_sops_does() -> None:
    assert document.format_for("secrets.yaml") is Format.YAML
    assert document.format_for("secrets.yml") is Format.YAML
    assert document.format_for("secrets.json") is Format.JSON
    assert document.format_for("prod.env") is Format.DOTENV
    assert document.format_for("legacy.ini") is Format.INI
    assert document.format_for("tls.key") is Format.BINARY
    assert document.format_for(".env.local") is Format.BINARY
    with pytest.raises(SopsDocumentError, match="INI documents are not supported"):
        document.parse(b"[a]\nb = c\n", Format.INI, where=WHERE)


# --- refusals: tampering and wrong keys, each with its own message ---------------------------


@dataclasses.dataclass(frozen=True)
class Tampering:
    name: str
    fmt: Format
    source: str
    args: tuple[str, ...]
    change: Callable[[bytes], bytes]
    message: str  # a regex the error must match
    sops_refuses: bool = True


def _flip_data(raw: bytes, field: bytes) -> bytes:
    """Change one byte of the ciphertext of `field`'s value."""
    match = re.search(rb"(" + field + rb": ENC\[AES256_GCM,data:)(.)", raw)
    assert match is not None
    swapped = b"A" if match[2] != b"A" else b"B"
    return raw[: match.start(2)] + swapped + raw[match.end(2) :]


def _swap(raw: bytes, first: bytes, second: bytes) -> bytes:
    one = re.search(rb"(?m)^(\s*" + first + rb": )(ENC\[.*\])$", raw)
    two = re.search(rb"(?m)^(\s*" + second + rb": )(ENC\[.*\])$", raw)
    assert one is not None
    assert two is not None
    swapped = raw.replace(one[0], one[1] + b"@@")
    swapped = swapped.replace(two[0], two[1] + one[2])
    return swapped.replace(one[1] + b"@@", one[1] + two[2])


def _drop_line(pattern: bytes) -> Callable[[bytes], bytes]:
    return lambda raw: re.sub(rb"(?m)^" + pattern + rb".*\n", b"", raw, count=1)


def _corrupt_age(raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    index = next(i for i, line in enumerate(lines) if b"BEGIN AGE ENCRYPTED FILE" in line) + 2
    lines[index] = lines[index][:-8] + b"AAAAAAAA"
    return b"\n".join(lines)


TAMPERINGS = [
    Tampering(
        "changed-value",
        Format.YAML,
        "app.yaml",
        (),
        lambda raw: _flip_data(raw, b"host"),
        r"the encrypted value at database\.host does not authenticate .* changed, or moved",
    ),
    Tampering(
        "swapped-values",
        Format.YAML,
        "app.yaml",
        (),
        lambda raw: _swap(raw, b"host", b"replica"),
        r"the encrypted value at database\.host does not authenticate",
    ),
    Tampering(
        "changed-clear-value",
        Format.YAML,
        "suffixes.yaml",
        ("--encrypted-suffix", "_private"),
        lambda raw: raw.replace(b"region: eu-west-1", b"region: us-east-1"),
        r"the MAC does not match: the document was changed after it was encrypted",
    ),
    Tampering(
        "added-clear-value",
        Format.YAML,
        "suffixes.yaml",
        ("--encrypted-suffix", "_private"),
        lambda raw: raw.replace(b"region: eu-west-1\n", b"region: eu-west-1\nzone: b\n"),
        r"the MAC does not match",
    ),
    Tampering(
        "added-plaintext-key",
        Format.YAML,
        "app.yaml",
        (),
        lambda raw: raw.replace(b"sops:\n", b"injected: hunter2\nsops:\n"),
        r"the value at injected should be encrypted but is plaintext",
    ),
    Tampering(
        "plaintext-in-list",
        Format.YAML,
        "app.yaml",
        (),
        lambda raw: re.sub(rb"(?m)^(    - )ENC\[[^\]]*type:int\]", rb"\g<1>1234", raw, count=1),
        r"the value at features\[2\] should be encrypted but is plaintext",
    ),
    Tampering(
        "removed-key",
        Format.YAML,
        "app.yaml",
        (),
        _drop_line(rb"    port: ENC"),
        r"the MAC does not match",
    ),
    Tampering(
        "removed-list-item",
        Format.JSON,
        "app.json",
        (),
        lambda raw: re.sub(rb'\[\n\t\t"ENC[^\n]*",\n', b"[\n", raw, count=1),
        r"the MAC does not match",
    ),
    Tampering(
        "changed-lastmodified",
        Format.YAML,
        "app.yaml",
        (),
        lambda raw: re.sub(rb'lastmodified: "\d{4}', b'lastmodified: "2001', raw),
        r"the MAC does not authenticate: the MAC or lastmodified was changed",
    ),
    Tampering(
        "deleted-mac",
        Format.YAML,
        "app.yaml",
        (),
        _drop_line(rb"    mac: "),
        r"the document has no MAC",
    ),
    Tampering(
        "deleted-mac-dotenv",
        Format.DOTENV,
        "app.env",
        (),
        _drop_line(rb"sops_mac="),
        r"the document has no MAC",
    ),
    Tampering(
        "malformed-value",
        Format.YAML,
        "app.yaml",
        (),
        lambda raw: re.sub(rb"(host: ENC\[AES256_GCM,data:)[^,]*", rb"\1!!!", raw),
        r"the encrypted value at database\.host is malformed: its data is not base64",
    ),
    Tampering(
        "unknown-type",
        Format.JSON,
        "app.json",
        (),
        lambda raw: re.sub(rb'("service": "ENC\[[^"]*type:)str', rb"\1secret", raw),
        r"the encrypted value at service is malformed: its type is unknown",
    ),
    Tampering(
        "malformed-mac",
        Format.YAML,
        "app.yaml",
        (),
        lambda raw: re.sub(rb"(mac: ENC\[AES256_GCM,data:)[^,]*", rb"\1%%", raw),
        r"the document's MAC is malformed",
    ),
    Tampering(
        "no-metadata",
        Format.YAML,
        "app.yaml",
        (),
        lambda raw: raw[: raw.index(b"sops:\n")],
        r"not a SOPS document: it has no sops metadata",
    ),
    Tampering(
        "two-rules",
        Format.YAML,
        "app.yaml",
        (),
        lambda raw: raw.replace(
            b"    unencrypted_suffix:", b"    encrypted_regex: x\n    unencrypted_suffix:"
        ),
        r"the sops metadata is malformed: it sets more than one of",
    ),
    Tampering(
        "bad-lastmodified",
        Format.YAML,
        "app.yaml",
        (),
        lambda raw: re.sub(rb'lastmodified: "[^"]*"', b'lastmodified: "yesterday"', raw),
        r"the sops metadata is malformed: lastmodified is not an RFC 3339 time",
    ),
]


@pytest.mark.parametrize("case", TAMPERINGS, ids=[t.name for t in TAMPERINGS])
def test_tampered_document_is_refused_as_sops_refuses_it(key: AgeKey, case: Tampering) -> None:
    raw = encrypt(fixture(case.source), case.fmt.value, key, *case.args)
    data_key = data_key_of(raw, case.fmt, key)
    tampered = case.change(raw)
    assert tampered != raw
    with pytest.raises(SopsDocumentError) as refused:
        open_doc(tampered, case.fmt, key)
    message = str(refused.value)
    assert message.startswith(WHERE + ": ")
    assert message.endswith("it is not synced")
    assert re.search(case.message, message), message
    assert isinstance(refused.value, ProviderError)
    assert_says_nothing_secret(message, raw, data_key)
    done = sopscli.decrypt_process(tampered, fmt=case.fmt.value, age_identities=key.identity)
    assert (done.returncode != 0) is case.sops_refuses, done.stderr


def assert_says_nothing_secret(message: str, raw: bytes, data_key: bytes | None = None) -> None:
    for secret in SECRETS:
        assert secret not in message
    assert "ENC[" not in message
    assert "AGE-SECRET-KEY" not in message
    for envelope in re.findall(rb"data:([A-Za-z0-9+/=]{6,})", raw):
        assert envelope.decode() not in message
    if data_key is not None:
        for spelling in (
            data_key.hex(),
            data_key.hex().upper(),
            base64.b64encode(data_key).decode(),
        ):
            assert spelling not in message


def test_wrong_data_key_is_told_from_tampering(key: AgeKey) -> None:
    raw = encrypt(fixture("app.yaml"), "yaml", key)
    other_key = data_key_of(encrypt(b"x: y\n", "yaml", key), Format.YAML, key)
    doc = document.parse(raw, Format.YAML, where=WHERE)
    with pytest.raises(SopsDocumentError, match="the data key does not decrypt this document"):
        document.decrypt(doc, other_key, where=WHERE)
    with pytest.raises(SopsDocumentError, match="the data key is 5 bytes long"):
        document.decrypt(doc, b"short", where=WHERE)


def test_wrong_age_identity_is_refused_naming_recipients(key: AgeKey) -> None:
    raw = encrypt(fixture("app.yaml"), "yaml", key)
    stranger = _age_key()
    doc = document.parse(raw, Format.YAML, where=WHERE)
    with pytest.raises(SopsDocumentError) as refused:
        document.unwrap_age(doc.age, stranger.identity, where=WHERE)
    message = str(refused.value)
    assert "no age identity of the store opens the document" in message
    assert key.recipient in message
    assert stranger.recipient in message
    assert_says_nothing_secret(message, raw)
    assert stranger.identity.decode().split("\n")[1] not in message
    assert sopscli.decrypt_process(raw, fmt="yaml", age_identities=stranger.identity).returncode


def test_corrupt_age_stanza_is_refused(key: AgeKey) -> None:
    raw = _corrupt_age(encrypt(fixture("app.yaml"), "yaml", key))
    doc = document.parse(raw, Format.YAML, where=WHERE)
    with pytest.raises(SopsDocumentError, match=r"the age stanza of recipient age1\w+ is corrupt"):
        document.unwrap_age(doc.age, key.identity, where=WHERE)
    assert sopscli.decrypt_process(raw, fmt="yaml", age_identities=key.identity).returncode


@pytest.mark.parametrize(
    ("identities", "problem"),
    [
        (b"", "holds no age identity"),
        (b"# only a comment\n\n", "holds no age identity"),
        (b"AGE-SECRET-KEY-1NOTBECH32\n", "line 1 of the age key file is a malformed age identity"),
        (b"# c\nAGE-PLUGIN-YUBIKEY-1XYZ\n", "line 2 of the age key file is not an age X25519"),
        (b"\xff\xfe", "is not UTF-8"),
    ],
)
def test_an_unusable_age_key_file_is_a_refused_credential(identities: bytes, problem: str) -> None:
    """AuthFailed, retried, and the session made again: a repaired key Secret is read."""
    with pytest.raises(ProviderAuthError, match=problem) as refused:
        document.check_age_identities(identities)
    assert "AGE-SECRET-KEY-1NOTBECH32" not in str(refused.value)
    with pytest.raises(ProviderAuthError, match=problem):
        document.unwrap_age((), identities, where=WHERE)


def test_shamir_key_groups_are_refused(key: AgeKey) -> None:
    second = _age_key()
    config = (
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
        f"      - age: [{key.recipient}]\n      - age: [{second.recipient}]\n"
    )
    raw = sopscli.encrypt(b"a: b\n", fmt="yaml", sops_config=config)
    with pytest.raises(
        SopsDocumentError, match=r"split over 2 key groups \(Shamir .*threshold 2\)"
    ):
        document.parse(raw, Format.YAML, where=WHERE)


@pytest.mark.parametrize(
    ("raw", "fmt", "problem"),
    [
        (b"\x00\x01\x02\xff\xfe garbage", Format.YAML, "not valid YAML"),
        (b"a: [unclosed\n", Format.YAML, r"not valid YAML at line 2, column 1"),
        (b"\x89PNG\r\n\x1a\n", Format.BINARY, "not valid JSON"),
        (b"not json", Format.JSON, "not valid JSON: Expecting value at line 1, column 1"),
        (b"[1, 2]", Format.JSON, "the JSON is not an object"),
        (b"- a\n- b\n", Format.YAML, "a YAML document is a list or a value"),
        (b"a: 1\na: 2\n", Format.YAML, "the key 'a' is repeated at line 2"),
        (b"NO_EQUALS_SIGN\n", Format.DOTENV, "line 1 has no '='"),
        (b"service: billing\nport: 8443\n", Format.YAML, "not a SOPS document"),
        (b'{"service": "billing"}', Format.JSON, "not a SOPS document"),
        (b"A=1\n", Format.DOTENV, "not a SOPS document"),
    ],
)
def test_documents_sops_cannot_read_are_refused(raw: bytes, fmt: Format, problem: str) -> None:
    with pytest.raises(SopsDocumentError, match=problem) as refused:
        document.parse(raw, fmt, where=WHERE)
    assert "billing" not in str(refused.value)
    assert "garbage" not in str(refused.value)
    done = sopscli.decrypt_process(raw, fmt=fmt.value, age_identities=b"")
    assert done.returncode != 0


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        (b"a: " + b"[" * 20000 + b"]" * 20000 + b"\n", Format.YAML),
        (b'{"a": ' + b"[" * 20000 + b"]" * 20000 + b"}", Format.JSON),
    ],
    ids=["yaml", "json"],
)
def test_a_document_nested_too_deeply_is_refused(raw: bytes, fmt: Format) -> None:
    with pytest.raises(SopsDocumentError, match="nests too deeply"):
        document.parse(raw, fmt, where=WHERE)


def _leaves(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [leaf for value in tree.values() for leaf in _leaves(value)]
    if isinstance(tree, list):
        return [leaf for value in tree for leaf in _leaves(value)]
    return [tree]


def test_every_refusal_of_the_fixture_names_no_value(key: AgeKey) -> None:
    """A last sweep: messages of every tampering hold no leaf of the fixture at all."""
    raw = encrypt(fixture("app.yaml"), "yaml", key)
    values = [
        str(v)
        for v in _leaves(open_doc(raw, Format.YAML, key).tree)
        if isinstance(v, str) and len(v) >= 4
    ]
    for case in (t for t in TAMPERINGS if t.source == "app.yaml" and not t.args):
        with pytest.raises(SopsDocumentError) as refused:
            open_doc(case.change(raw), Format.YAML, key)
        for value in values:
            assert value not in str(refused.value), case.name
