"""A tiny secret service speaking the httpjson API, for tests and demos (standard library
only). It keeps every version of every secret in memory, so it is no place for real
secrets.

Who may read what: each request carries `Authorization: Bearer <token>`. The token names
a subject, either through a table of static tokens (a demo without a cluster) or through
Kubernetes' TokenReview API (the subject is then `system:serviceaccount:<ns>:<name>`,
and the token must have been issued for this service's audience). `allow` maps each
subject to the key prefixes it may read; every other key is refused (403), whether it
exists or not. Writes need the admin token.

    python -m secretsync_httpjson.server --config server.json [--host 127.0.0.1] [--port 8200]

server.json:

    {
      "adminTokenFile": "/run/httpjson/admin-token",
      "tokens": {"<demo token>": "demo"},
      "tokenReview": {"server": "https://kubernetes.default.svc",
                      "caFile": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
                      "tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
                      "audience": "httpjson"},
      "allow": {"system:serviceaccount:team-a:team-a-sync": ["team-a/"], "demo": ["demo/"]}
    }

The API (JSON bodies; a ref is {"key": str, "version": str | null}):

    GET  /v1/whoami                  -> {"subject": str}
    POST /v1/read     {"refs": [..]} -> {"results": [result, ...]}, at most 100 refs a call
    POST /v1/versions {"refs": [..]} -> {"results": [result, ...]}, at most 100 refs a call
    GET  /v1/keys?prefix=P           -> {"keys": [every readable key starting with P]}
    PUT  /v1/secrets/<key> {"value": str} or {"binary": base64}   (admin) -> {"version": str}

A result is {"status": "ok", "version": str, and for /v1/read "value": str or "binary":
base64}, or {"status": "not_found" | "denied" | "invalid"}, in the order of the refs.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hmac
import http.server
import json
import signal
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

MAX_REFS = 100  # refs one /v1/read or /v1/versions call may carry
REVIEW_TIMEOUT = 10  # seconds for one TokenReview call


@dataclasses.dataclass(frozen=True)
class Version:
    data: bytes = dataclasses.field(repr=False)
    binary: bool


class Secrets:
    """Every version of every secret, in memory; versions are numbered from 1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, list[Version]] = {}

    def put(self, key: str, data: bytes, *, binary: bool) -> str:
        with self._lock:
            versions = self._data.setdefault(key, [])
            versions.append(Version(data, binary))
            return str(len(versions))

    def get(self, key: str, version: str | None) -> tuple[str, Version] | None:
        """The version asked for (None: the latest), or None when there is no such thing."""
        with self._lock:
            versions = self._data.get(key)
            if not versions:
                return None
            number = len(versions) if version is None else int(version)
            if not 1 <= number <= len(versions):
                return None
            return str(number), versions[number - 1]

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self._data if k.startswith(prefix))


class Authenticator(Protocol):
    def subject(self, token: str) -> str | None:
        """The subject the token stands for, or None when it is not valid here."""


class StaticTokens:
    """A table of tokens and their subjects (demos without a cluster)."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = dict(tokens)

    def subject(self, token: str) -> str | None:
        for known, subject in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return subject
        return None


class TokenReview:
    """Kubernetes' TokenReview API: the token must be valid and issued for `audience`."""

    def __init__(self, *, server: str, ca_file: str | None, token_file: str, audience: str):
        self._url = server.rstrip("/") + "/apis/authentication.k8s.io/v1/tokenreviews"
        self._context = ssl.create_default_context(cafile=ca_file)
        self._token_file = Path(token_file)
        self._audience = audience

    def subject(self, token: str) -> str | None:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self._audience]},
        }
        request = urllib.request.Request(  # noqa: S310 - the configured apiserver's https URL
            self._url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self._token_file.read_text().strip()}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(  # noqa: S310 - see above
                request, timeout=REVIEW_TIMEOUT, context=self._context
            ) as response:
                status = json.load(response).get("status") or {}
        except (urllib.error.URLError, OSError, ValueError) as exc:
            sys.stderr.write(f"httpjson-server: TokenReview failed: {type(exc).__name__}\n")
            return None
        if not status.get("authenticated") or self._audience not in (status.get("audiences") or ()):
            return None
        username = (status.get("user") or {}).get("username")
        return str(username) if username else None


class Anyone:
    """Several authenticators: the first that knows the token names its subject."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self._authenticators = list(authenticators)

    def subject(self, token: str) -> str | None:
        for authenticator in self._authenticators:
            subject = authenticator.subject(token)
            if subject is not None:
                return subject
        return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Who may do what (see the module's docstring for the file that holds it)."""

    admin_token: str = dataclasses.field(repr=False)
    authenticator: Authenticator
    allow: Mapping[str, tuple[str, ...]]

    @classmethod
    def load(cls, path: Path) -> ServerConfig:
        raw = json.loads(path.read_text())
        authenticators: list[Authenticator] = []
        if raw.get("tokens"):
            authenticators.append(StaticTokens(raw["tokens"]))
        review = raw.get("tokenReview")
        if review:
            authenticators.append(
                TokenReview(
                    server=review["server"],
                    ca_file=review.get("caFile"),
                    token_file=review["tokenFile"],
                    audience=review.get("audience", "httpjson"),
                )
            )
        return cls(
            admin_token=Path(raw["adminTokenFile"]).read_text().strip(),
            authenticator=Anyone(authenticators),
            allow={subject: tuple(prefixes) for subject, prefixes in raw.get("allow", {}).items()},
        )

    def may_read(self, subject: str, key: str) -> bool:
        return any(key.startswith(prefix) for prefix in self.allow.get(subject, ()))


class _RefusedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as a real service would

    def do_GET(self) -> None:  # the name http.server calls
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def do_PUT(self) -> None:
        self._answer(self._put)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line names keys, never values.
        if self.server.verbose:
            super().log_message(format, *args)

    # --- routes ---------------------------------------------------------------------

    def _get(self, url: urllib.parse.SplitResult) -> object:
        subject = self._subject()
        if url.path == "/v1/whoami":
            return {"subject": subject}
        if url.path == "/v1/keys":
            prefix = urllib.parse.parse_qs(url.query).get("prefix", [""])[0]
            keys = self.server.secrets.keys(prefix)
            return {"keys": [k for k in keys if self.server.config.may_read(subject, k)]}
        raise _RefusedError(404, "no such route")

    def _post(self, url: urllib.parse.SplitResult) -> object:
        subject = self._subject()
        if url.path not in ("/v1/read", "/v1/versions"):
            raise _RefusedError(404, "no such route")
        refs = self._body().get("refs")
        if not isinstance(refs, list) or len(refs) > MAX_REFS:
            raise _RefusedError(400, f"refs must be a list of at most {MAX_REFS}")
        with_values = url.path == "/v1/read"
        return {"results": [self._result(subject, ref, with_values) for ref in refs]}

    def _put(self, url: urllib.parse.SplitResult) -> object:
        if not hmac.compare_digest(self._token().encode(), self.server.config.admin_token.encode()):
            raise _RefusedError(403, "writes need the admin token")
        prefix = "/v1/secrets/"
        if not url.path.startswith(prefix) or len(url.path) == len(prefix):
            raise _RefusedError(404, "no such route")
        key = urllib.parse.unquote(url.path[len(prefix) :])
        body = self._body()
        if isinstance(body.get("binary"), str):
            data, binary = base64.b64decode(body["binary"]), True
        elif isinstance(body.get("value"), str):
            data, binary = body["value"].encode(), False
        else:
            raise _RefusedError(400, 'the body needs "value" (text) or "binary" (base64)')
        return {"version": self.server.secrets.put(key, data, binary=binary)}

    def _result(self, subject: str, ref: object, with_values: bool) -> dict[str, str]:
        if not isinstance(ref, dict) or not isinstance(ref.get("key"), str):
            return {"status": "invalid"}
        key, version = ref["key"], ref.get("version")
        if version is not None and not (isinstance(version, str) and version.isdigit()):
            return {"status": "invalid"}
        if not self.server.config.may_read(subject, key):
            return {"status": "denied"}  # whether it exists or not
        found = self.server.secrets.get(key, version)
        if found is None:
            return {"status": "not_found"}
        number, stored = found
        result = {"status": "ok", "version": number}
        if with_values:
            if stored.binary:
                result["binary"] = base64.b64encode(stored.data).decode()
            else:
                result["value"] = stored.data.decode()
        return result

    # --- plumbing -------------------------------------------------------------------

    def _token(self) -> str:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _RefusedError(401, "a bearer token is required")
        return token.strip()

    def _subject(self) -> str:
        subject = self.server.config.authenticator.subject(self._token())
        if subject is None:
            raise _RefusedError(401, "the token is not valid here")
        return subject

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise _RefusedError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise _RefusedError(400, "the body is not a JSON object")
        return body

    def _answer(self, route: Any) -> None:
        try:
            status, payload = 200, route(urllib.parse.urlsplit(self.path))
        except _RefusedError as exc:
            status, payload = exc.status, {"error": str(exc)}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], config: ServerConfig, verbose: bool) -> None:
        super().__init__(address, _Handler)
        self.config = config
        self.secrets = Secrets()
        self.verbose = verbose


@dataclasses.dataclass
class Running:
    """A server serving from a thread of this process."""

    url: str
    secrets: Secrets
    _server: _Server
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve(
    config: ServerConfig, *, host: str = "127.0.0.1", port: int = 0, verbose: bool = False
) -> Running:
    """Serve in a background thread; port 0 picks a free port."""
    server = _Server((host, port), config, verbose)
    thread = threading.Thread(target=server.serve_forever, name="httpjson-server", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    return Running(
        url=f"http://{bound_host!s}:{bound_port}",
        secrets=server.secrets,
        _server=server,
        _thread=thread,
    )


@dataclasses.dataclass(frozen=True)
class Admin:
    """Writes secrets through the API with the admin token (tests and demos)."""

    url: str
    token: str = dataclasses.field(repr=False)

    def put(self, key: str, value: str | bytes) -> str:
        """Write a new version; its number."""
        body = (
            {"binary": base64.b64encode(value).decode()}
            if isinstance(value, bytes)
            else {"value": value}
        )
        request = urllib.request.Request(  # noqa: S310 - the URL this admin was given
            f"{self.url}/v1/secrets/{urllib.parse.quote(key)}",
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - see above
            return str(json.load(response)["version"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m secretsync_httpjson.server")
    parser.add_argument("--config", type=Path, required=True, help="the server's JSON config")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200, help="0: any free port")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    running = serve(ServerConfig.load(args.config), host=args.host, port=args.port, verbose=True)
    # One line a caller can wait for, and read the port from.
    sys.stdout.write(f"httpjson-server: listening on {running.url}\n")
    sys.stdout.flush()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
