"""The real sops CLI (v3.13.3), for tests that encrypt with it and compare with it.

tools/sops/build.sh builds it from the Go module proxy into ~/.cache/secretsync (a
cold build takes minutes, a warm call milliseconds) and prints `SOPS_BIN=DIR`. There
is no fallback: if it cannot be built, every caller fails with the build's output.

Each run gets a scratch directory as its working directory, a sops config file of
its own (so no .sops.yaml of the checkout applies), and an environment of PATH and
HOME plus what the caller passes: nothing from the developer's shell leaks in.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A config whose one rule matches every file and names no key: the keys come from flags.
_NO_RULES = "creation_rules:\n  - path_regex: ''\n"

# Flags the `encrypt` subcommand lacks; with them sops runs in its legacy `--encrypt` mode.
_GLOBAL_ONLY = (
    "--mac-only-encrypted",
    "--encrypted-comment-regex",
    "--unencrypted-comment-regex",
)


@functools.cache
def binary() -> Path:
    """The sops executable, built on first use."""
    built = subprocess.run(
        ["bash", str(ROOT / "tools" / "sops" / "build.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    for line in built.stdout.splitlines():
        if line.startswith("SOPS_BIN="):
            path = Path(line.removeprefix("SOPS_BIN=")) / "sops"
            if path.is_file():
                return path
    raise RuntimeError(
        f"tools/sops/build.sh did not build sops (exit {built.returncode}):\n"
        f"{built.stdout}\n{built.stderr[-4000:]}"
    )


def format_of(file_name: str) -> str:
    """The type sops picks for a file name (cmd/sops/formats FormatForPath)."""
    for suffixes, fmt in (((".yaml", ".yml"), "yaml"), ((".json",), "json"), ((".env",), "dotenv")):
        if file_name.endswith(suffixes):
            return fmt
    return "ini" if file_name.endswith(".ini") else "binary"


def _file_name(fmt: str | None, file_name: str | None) -> tuple[str, str]:
    if file_name is not None:
        return fmt or format_of(file_name), file_name
    if fmt is None:
        raise ValueError("sopscli: give fmt or file_name")
    return fmt, "input." + {"dotenv": "env", "binary": "bin"}.get(fmt, fmt)


def _key_file(identities: bytes | Sequence[str]) -> bytes:
    if isinstance(identities, bytes):
        return identities
    return "".join(f"{identity}\n" for identity in identities).encode()


def run(
    args: Sequence[str],
    *,
    source: bytes,
    fmt: str,
    file_name: str,
    env: Mapping[str, str] | None = None,
    files: Mapping[str, bytes] | None = None,
    sops_config: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """sops with `args`, `source` written to `file_name` given last, as type `fmt`.

    `files` are written beside it first; "{dir}" in args and env values is replaced by
    the scratch directory; `sops_config` is the .sops.yaml to use (default: no rules)."""
    with tempfile.TemporaryDirectory(prefix="sopscli-") as scratch:
        directory = Path(scratch)
        for name, content in (files or {}).items():
            (directory / name).write_bytes(content)
        config = directory / "sops-config.yaml"
        config.write_text(sops_config or _NO_RULES)
        path = directory / file_name
        path.write_bytes(source)
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": scratch,
            **{k: v.replace("{dir}", scratch) for k, v in (env or {}).items()},
        }
        command = [
            str(binary()),
            "--disable-version-check",
            "--config",
            str(config),
            *(a.replace("{dir}", scratch) for a in args),
            "--input-type",
            fmt,
            "--output-type",
            fmt,
            str(path),
        ]
        return subprocess.run(
            command, cwd=scratch, env=environment, capture_output=True, check=False, timeout=60
        )


def encrypt(
    plaintext: bytes,
    *,
    fmt: str | None = None,
    file_name: str | None = None,
    age_recipients: Sequence[str] = (),
    kms_arns: Sequence[str] = (),
    hc_vault_transit_uris: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    sops_config: str | None = None,
) -> bytes:
    """The document `sops encrypt` writes; RuntimeError with sops's stderr if it fails.

    `fmt` is sops's type name (yaml, json, dotenv, binary), or it follows `file_name` as
    sops's own choice does; `sops_config` is a .sops.yaml (its creation rules can make
    key groups, which no flag can)."""
    fmt, name = _file_name(fmt, file_name)
    args: list[str] = []
    if age_recipients:
        args += ["--age", ",".join(age_recipients)]
    if kms_arns:
        args += ["--kms", ",".join(kms_arns)]
    if hc_vault_transit_uris:
        args += ["--hc-vault-transit", ",".join(hc_vault_transit_uris)]
    legacy = any(a.split("=")[0] in _GLOBAL_ONLY for a in extra_args)
    done = run(
        ["--encrypt" if legacy else "encrypt", *args, *extra_args],
        source=plaintext,
        fmt=fmt,
        file_name=name,
        env=env,
        sops_config=sops_config,
    )
    if done.returncode != 0:
        raise RuntimeError(f"sops encrypt failed ({done.returncode}): {done.stderr.decode()}")
    return done.stdout


def decrypt_process(
    document: bytes,
    *,
    fmt: str | None = None,
    file_name: str | None = None,
    age_identities: bytes | Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """`sops decrypt` of a document, its exit code and output as they are (for documents
    it should refuse). `age_identities` is a key file's text, or identity strings."""
    fmt, name = _file_name(fmt, file_name)
    files = {}
    environment = dict(env or {})
    if age_identities is not None:
        files["age-keys.txt"] = _key_file(age_identities)
        environment["SOPS_AGE_KEY_FILE"] = "{dir}/age-keys.txt"
    return run(["decrypt"], source=document, fmt=fmt, file_name=name, env=environment, files=files)


def decrypt(
    document: bytes,
    *,
    fmt: str | None = None,
    file_name: str | None = None,
    age_identities: bytes | Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """What `sops decrypt` prints; RuntimeError with sops's stderr if it fails."""
    done = decrypt_process(
        document, fmt=fmt, file_name=file_name, age_identities=age_identities, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"sops decrypt failed ({done.returncode}): {done.stderr.decode()}")
    return done.stdout
