"""A read-only Git server over HTTP on loopback, for Flux's source-controller.

source-controller clones with go-git, which speaks Git's smart HTTP protocol (or SSH)
but not the dumb one, so serving a repository's files statically is not enough. Git's
own `git http-backend` (a CGI program shipped with Debian's git) implements the smart
protocol; this module puts it behind a small threaded HTTP server: each request runs
one `git http-backend` with the CGI variables it expects. Pushes are refused (the
backend allows receive-pack only to authenticated users); the tests update
repositories through the file system instead (harness/flux.py).

Run as a program by harness/flux.py, so that it has a log in the run folder and
stops like every other component::

    python -m harness.gitserver --root DIR --port PORT
"""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import subprocess
import sys
import urllib.parse

HEALTH_PATH = "/healthz"
# A clone of a test repository takes milliseconds; this only bounds a stuck backend.
BACKEND_TIMEOUT = 60.0


class _GitServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, root: str, git: str) -> None:
        super().__init__(address, _Handler)
        self.root = root
        self.git = git


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _GitServer
    # HTTP/1.1 so that go-git can keep its connection open between requests.
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self._reply(200, [("Content-Type", "text/plain")], b"ok\n")
            return
        self._backend()

    def do_POST(self) -> None:
        self._backend()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # Trailer lines up to the blank line that ends the request.
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _backend(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._body()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.server.root,
            # Every repository under the root is served, without a git-daemon-export-ok file.
            "GIT_HTTP_EXPORT_ALL": "1",
            # The host's Git configuration must not change what is served.
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
        }
        # The backend inflates gzip request bodies itself and needs the protocol header
        # for protocol v2; every other header as CGI passes them.
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                env[key] = value
        if "Git-Protocol" in self.headers:
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        try:
            proc = subprocess.run(
                [self.server.git, "http-backend"],
                input=body,
                env=env,
                capture_output=True,
                timeout=BACKEND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self._reply(504, [("Content-Type", "text/plain")], b"git http-backend timed out\n")
            return
        if proc.stderr:
            sys.stderr.write(proc.stderr.decode(errors="replace").rstrip("\n") + "\n")
        self._cgi_reply(proc.stdout)

    def _cgi_reply(self, output: bytes) -> None:
        head, sep, payload = output.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = output.partition(b"\n\n")
        if not sep:
            self._reply(502, [("Content-Type", "text/plain")], b"git http-backend said nothing\n")
            return
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self._reply(status, headers, payload)

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.gitserver", description=__doc__)
    parser.add_argument("--root", required=True, help="folder holding the bare repositories")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    git = shutil.which("git")
    if git is None:
        print("gitserver: git is not installed (Debian package git)", file=sys.stderr)
        return 1
    server = _GitServer((args.host, args.port), root=os.path.abspath(args.root), git=git)
    print(f"gitserver: serving {args.root} on http://{args.host}:{args.port}", file=sys.stderr)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
