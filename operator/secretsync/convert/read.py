"""Input: YAML or JSON manifests from files, directories (recursively), or stdin.

Each document becomes a `Document` that knows where it came from ("path#index"), so the
report and the errors can point at it. `kind: List` (and `kind: ...List` with `items`,
as `kubectl get -o yaml` writes) is opened into its items.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import yaml

from secretsync.errors import ConfigError

SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
GROUP = "external-secrets.io"  # ESO's API group
VERSIONS = ("v1", "v1beta1")  # the versions converted (and, in order, read from a cluster)


class InputError(ConfigError):
    """An input that cannot be read: the message names the file and the document."""


@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    """One object of the input, and where it came from."""

    source: str
    body: Mapping[str, Any]

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion") or "")

    @property
    def kind(self) -> str:
        return str(self.body.get("kind") or "")

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, Mapping) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str | None:
        ns = self.metadata.get("namespace")
        return str(ns) if ns else None


def _why(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: byte {exc.start} cannot be decoded"
    return getattr(exc, "strerror", None) or type(exc).__name__


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    elif path.exists():
        yield path
    else:
        raise InputError(f"{path}: no such file or directory")


def _expand(source: str, body: Any) -> Iterator[Document]:
    kind = body.get("kind") if isinstance(body, Mapping) else None
    if isinstance(kind, str) and kind.endswith("List") and isinstance(body.get("items"), list):
        for i, item in enumerate(body["items"]):
            if not isinstance(item, Mapping):
                raise InputError(f"{source}: items[{i}] is not an object")
            yield from _expand(f"{source}.items[{i}]", item)
        return
    if not isinstance(body, Mapping):
        raise InputError(f"{source}: not a Kubernetes object (a mapping with apiVersion and kind)")
    yield Document(source, body)


def parse(text: str, *, name: str) -> list[Document]:
    """The documents of one YAML (or JSON) text; `name` is how errors call it."""
    docs: list[Document] = []
    read = 0  # documents read so far: the index of the one that fails
    try:
        for body in yaml.safe_load_all(text):
            index, read = read, read + 1
            if body is None:  # an empty document between two ---
                continue
            docs.extend(_expand(f"{name}#{index}", body))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise InputError(f"{name}: document {read}{line}: not valid YAML ({problem})") from None
    return docs


def load(paths: Iterable[str], *, stdin: IO[str]) -> list[Document]:
    """Every document of the paths in order ("-" is stdin; directories recursively)."""
    docs: list[Document] = []
    for arg in paths:
        if arg == STDIN:
            try:
                text = stdin.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"{STDIN} (stdin): cannot be read ({_why(exc)})") from None
            docs.extend(parse(text, name=STDIN))
            continue
        for path in _files(Path(arg)):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"{path}: cannot be read ({_why(exc)})") from None
            docs.extend(parse(text, name=str(path)))
    return docs
