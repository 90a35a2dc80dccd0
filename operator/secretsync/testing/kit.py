"""The conformance kit's machinery, free of pytest: a gate that records calls, a target
wrapper that remembers every value it seeds, a log watch, and the leak check that ties
them together."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TypeVar

from secretsync.errors import ProviderError
from secretsync.logs import QUIET_LOGGERS
from secretsync.models.remote import ObservingGate
from secretsync.models.store import PluginProvider, ProviderSpec, ServiceAccountRef
from secretsync.providers import registry
from secretsync.providers.base import Backend, LoginMaterial, SecretsClient
from secretsync.testing.target import Capabilities, ConformanceTarget, TaggingTarget

T = TypeVar("T")

MIN_LEAK_LENGTH = 8  # shorter forms would be found by accident


class RecordingGate(ObservingGate):
    """A CallGate that lets every call through and remembers (operation, outcome), where
    outcome is "success" or "error"."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        super().__init__(lambda operation, outcome: self.seen.append((operation, outcome)))

    def count(self, operation: str) -> int:
        """How many calls of `operation` were made."""
        return sum(1 for op, _ in self.seen if op == operation)


def backend_for_plugin(
    name: str,
    config: Mapping[str, object] | None = None,
    *,
    service_account: str | None = None,
    audiences: Iterable[str] = (),
) -> Backend:
    """The backend the operator would build for `spec.provider.plugin` with this name,
    service account and config: through the installed `secretsync.providers` entry point
    and its factory, so a target built with it also proves the package is registered."""
    sa = (
        ServiceAccountRef(name=service_account, audiences=tuple(audiences))
        if service_account is not None
        else None
    )
    plugin = PluginProvider(name=name, service_account=sa, config=dict(config or {}))
    return registry.backend_for(ProviderSpec(plugin=plugin))


def leak_forms(value: bytes) -> set[bytes]:
    """The ways a value could show up in text: raw, base64 (standard and URL-safe),
    escaped inside a JSON string, and as Python shows bytes (a logged `%r`); forms shorter
    than MIN_LEAK_LENGTH are left out."""
    out = {value, base64.b64encode(value), base64.urlsafe_b64encode(value)}
    out.add(json.dumps(value.decode(errors="replace"))[1:-1].encode())
    out.add(repr(value)[2:-1].encode())
    return {form for form in out if len(form) >= MIN_LEAK_LENGTH}


def error_texts(error: BaseException) -> list[str]:
    """str() and repr() of an error and of every error it was raised from or during."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


class LogWatch(logging.Handler):
    """Every log record made while it is installed, except the ones the operator would
    drop (secretsync.logs.QUIET_LOGGERS below WARNING) and the ones made while paused
    (the target seeding its service: its admin client may log what it writes)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self.paused = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.paused:
            return
        quiet = any(record.name == q or record.name.startswith(q + ".") for q in QUIET_LOGGERS)
        if quiet and record.levelno < logging.WARNING:
            return
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is still worth scanning
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "\n".join(error_texts(record.exc_info[1]))
        self.texts.append(f"{record.name}: {text}")

    @contextlib.contextmanager
    def installed(self) -> Iterator[LogWatch]:
        """Watch every logger at DEBUG for the length of the block, with the libraries of
        QUIET_LOGGERS kept at WARNING as the operator keeps them."""
        root = logging.getLogger()
        quiet = {name: logging.getLogger(name) for name in QUIET_LOGGERS}
        levels = {name: logger.level for name, logger in quiet.items()}
        root_level = root.level
        root.addHandler(self)
        root.setLevel(logging.DEBUG)
        for logger in quiet.values():
            logger.setLevel(logging.WARNING)
        try:
            yield self
        finally:
            root.removeHandler(self)
            root.setLevel(root_level)
            for name, logger in quiet.items():
                logger.setLevel(levels[name])

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Records made in the block are not kept."""
        was, self.paused = self.paused, True
        try:
            yield
        finally:
            self.paused = was


class CheckedTarget:
    """A ConformanceTarget as the kit's cases use it: every value seeded through it is
    remembered (for the leak checks), and the log watch is paused while it seeds."""

    def __init__(self, target: ConformanceTarget, watch: LogWatch) -> None:
        self.target = target
        self.watch = watch
        self.values: set[bytes] = set()
        self.errors: list[BaseException] = []

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def capabilities(self) -> Capabilities:
        return self.target.capabilities

    def prefix(self) -> str:
        return self.target.prefix()

    def stored(self, value: str) -> bytes:
        """What fetch() returns after put(key, value)."""
        return self.target.stored_bytes(value)

    def denied_key(self) -> str | None:
        with self.watch.pause():
            return self.target.denied_key()

    def put(self, key: str, value: str | bytes) -> None:
        self.remember(value)
        with self.watch.pause():
            self.target.put(key, value)

    def put_map(self, key: str, value: Mapping[str, str]) -> None:
        self.values.update(v.encode() for v in value.values())
        with self.watch.pause():
            self.target.put_map(key, value)

    def remember(self, value: str | bytes) -> None:
        """Scan for this value too (a part of a seeded value, such as one JSON property)."""
        self.values.add(value if isinstance(value, bytes) else value.encode())

    def put_tags(self, key: str, tags: Mapping[str, str]) -> None:
        if not isinstance(self.target, TaggingTarget):
            raise TypeError(
                f"{self.name}: capabilities.find_tags is True, but the target has no put_tags()"
            )
        with self.watch.pause():
            self.target.put_tags(key, tags)

    def material(self) -> LoginMaterial:
        with self.watch.pause():
            material = self.target.material()
        if material.service_account_token:
            self.values.add(material.service_account_token.encode())
        self.values.update(v for v in material.secrets.values())
        return material

    def run(self, use: Callable[[SecretsClient], Awaitable[T]], gate: RecordingGate | None) -> T:
        """Log in as the target's identity, run `use` with a fresh client, close it. An
        error it raises is kept for the leak check and raised again."""

        async def go() -> T:
            backend = self.target.backend()
            session = await backend.login(self.material())
            client = backend.client(session, gate if gate is not None else RecordingGate())
            try:
                return await use(client)
            finally:
                await client.close()

        try:
            return asyncio.run(go())
        except ProviderError as exc:
            self.errors.append(exc)
            raise

    def leaks(self) -> list[str]:
        """Where a form of a seeded value or of a credential shows up: in a log record or
        in the text of an error the backend returned or raised (described, not quoted)."""
        sources = {f"log record {i + 1}": text for i, text in enumerate(self.watch.texts)}
        for i, error in enumerate(self.errors):
            sources[f"error {i + 1} ({type(error).__name__})"] = "\n".join(error_texts(error))
        hits = set()
        for value in self.values:
            for form in leak_forms(value):
                text_form = form.decode(errors="replace")
                for where, text in sources.items():
                    if text_form in text:
                        hits.add(f"{where} holds a secret value ({len(value)} bytes) in some form")
        return sorted(hits)
