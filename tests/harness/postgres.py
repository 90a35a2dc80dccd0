"""PostgreSQL from Debian's packages, for Vault's database secrets engine.

A cluster of its own (initdb into a fresh directory), on a loopback port, run as a
non-root user (PostgreSQL refuses root; as root the harness drops to Debian's
`postgres` user with setpriv, which execs in place so the recorded pid is the
server's), with password logins only (scram-sha-256) and its log kept in the run
folder. `psql` checks that credentials Vault issued really log in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from harness.processes import EnvError, Processes, free_port

VERSIONS = ("17", "16", "15")  # Debian's server packages, newest first
ADMIN = "vaultadmin"  # the role Vault's database engine manages others with
READY_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Postgres:
    port: int
    admin: str
    admin_password: str = dataclasses.field(repr=False)
    data_dir: Path

    def url(self, user: str, password: str, database: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"


def _bin_dir() -> Path:
    for version in VERSIONS:
        path = Path("/usr/lib/postgresql") / version / "bin"
        if (path / "postgres").exists():
            return path
    raise EnvError(
        "PostgreSQL's server is not installed (/usr/lib/postgresql/<version>/bin/postgres); "
        "run `make node-debs` (tools/node/install-debs.sh installs Debian's postgresql)"
    )


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise EnvError("no `postgres` user: install Debian's postgresql package") from None
    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    return [setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]


def psql(
    pg: Postgres, user: str, password: str, sql: str, *, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    """Run SQL as `user`; the caller looks at returncode (a refused login is 2)."""
    return subprocess.run(
        [
            str(_bin_dir() / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(pg.port),
            "-U",
            user,
            "-d",
            "postgres",
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
        env={**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start(procs: Processes) -> Postgres:
    """initdb and start a server; ready when the admin can run a query."""
    bin_dir = _bin_dir()
    # Not in the run folder: that is root's alone, and the server user must own its data.
    base = Path(tempfile.mkdtemp(prefix="secretsync-postgres-"))
    (procs.run_dir / "postgres-dir").write_text(str(base))
    password = secrets.token_urlsafe(18)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    data = base / "data"
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(base, entry.pw_uid, entry.pw_gid)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    base.chmod(0o700)
    init = subprocess.run(
        _as_server_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                ADMIN,
                "--pwfile",
                str(pwfile),
                "-A",
                "scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        ),
        capture_output=True,
        text=True,
        cwd=base,
        check=False,
    )
    pwfile.unlink()
    if init.returncode != 0:
        raise EnvError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    port = free_port()
    server = procs.start(
        "postgres",
        _as_server_user(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                str(base),  # the Unix socket beside the data, not /var/run/postgresql
                "-c",
                "fsync=off",  # a throw-away cluster: no durability wanted, speed is
                "-c",
                "log_connections=on",
            ]
        ),
    )
    pg = Postgres(port=port, admin=ADMIN, admin_password=password, data_dir=data)
    procs.wait_ready(
        server,
        lambda: psql(pg, ADMIN, password, "select 1", timeout=5).returncode == 0,
        timeout=READY_TIMEOUT,
        what="accepting logins",
    )
    return pg


def stop(procs: Processes, *, grace: float = 10.0) -> None:
    """A fast shutdown (SIGINT): the SIGTERM that stops the other programs is PostgreSQL's
    "smart" shutdown, which waits for every client, and OpenBao keeps its connections
    open. Its backends lead process groups of their own, so only the server is signalled."""
    for started in procs.started:
        if started.name == "postgres" and started.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(started.pid, signal.SIGINT)
            deadline = time.monotonic() + grace
            while started.alive() and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(started.pid, os.WNOHANG)
                time.sleep(0.1)


def remove(run_dir: Path) -> None:
    """Delete the cluster's directory once its server has stopped."""
    marker = run_dir / "postgres-dir"
    if marker.exists():
        shutil.rmtree(marker.read_text().strip(), ignore_errors=True)
        marker.unlink()
