"""A throwaway PostgreSQL server on 127.0.0.1 for the storage tests, from Debian's `postgresql` package.

One cluster per test session, in a temporary folder, on a free port, with trust authentication on loopback;
each test gets a database of its own. A missing PostgreSQL fails the tests (never skips them): `make test`
installs it (`make postgres`).
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class Cluster:
    port: int
    _names = itertools.count(1)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://doppel@127.0.0.1:{self.port}/{database}"

    async def fresh_database(self) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        import asyncpg

        name = f"test_{os.getpid()}_{next(self._names)}"
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="doppel", database="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)


def _bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    assert found, "PostgreSQL is needed for the storage tests: `make postgres` installs it (apt-get install postgresql)"
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    # PostgreSQL refuses to run as root: there, the cluster belongs to the package's `postgres` user
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="doppel-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command[0]} failed: {done.stdout[-800:]}{done.stderr[-800:]}"

    run(initdb, "-D", str(data), "-U", "doppel", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
    # fsync off: a test database need not survive a power cut, and the 2-core CI machine is slow enough
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "-t", "60", "start")
    try:
        yield Cluster(port)
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Database:
    backend: str  # "sqlite" or "postgresql"
    url: str
    engine: AsyncEngine


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database on each backend doppel supports: a SQLite file, and a fresh database of this session's
    cluster (started only when a PostgreSQL case runs; a test module imports `postgres` beside this fixture)."""
    from storage.db import create_engine, upgrade

    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'doppel.db'}"
    else:
        url = await request.getfixturevalue("postgres").fresh_database()
    engine = create_engine(url)
    await upgrade(engine)
    try:
        yield Database(request.param, url, engine)
    finally:
        await engine.dispose()
