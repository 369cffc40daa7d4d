"""One study shared by two sweep folders (two machines) through a real PostgreSQL server.

The test starts its own server: Debian's ``postgresql`` binaries, ``initdb`` and ``pg_ctl`` into
a temporary folder, listening on a free port of 127.0.0.1 only, stopped at the end whatever
happens. It is skipped, saying why, only where those binaries or their user are missing
(``make test`` installs the package as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.synth import synth_bacteria

optuna = pytest.importorskip(
    "optuna", reason="cnnlab sweep needs Optuna: pip install 'cnnlab[sweep]'"
)
psycopg2 = pytest.importorskip(
    "psycopg2", reason="no PostgreSQL driver: pip install 'cnnlab[sweep]'"
)

from cnnlab.sweep import run_sweep  # noqa: E402

START_SECONDS = 60


def _server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    binaries = _server_binaries()
    if binaries is None or not (binaries / "pg_ctl").exists():
        pytest.skip(
            "PostgreSQL is not installed (no initdb/pg_ctl; Debian: apt-get install postgresql, "
            "which 'make test' does as root)"
        )
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="cnnlab-postgres-"))
    if os.geteuid() == 0:  # initdb refuses root: the server runs as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root, and there is no postgres user to run the server as")
        if shutil.which("runuser") is None:
            shutil.rmtree(root)
            pytest.skip("running as root without runuser to start the server as postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    pg_ctl = [*prefix, str(binaries / "pg_ctl"), "-D", str(data)]
    initdb = [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-N"]
    subprocess.run(
        [*prefix, *initdb, "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=START_SECONDS,
    )
    try:
        # Only 127.0.0.1, a socket folder of its own, no fsync: a throwaway test server.
        server = f"-h 127.0.0.1 -p {port} -k {root} -F"
        subprocess.run(
            [
                *pg_ctl,
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                str(START_SECONDS),
                "start",
                "-o",
                server,
            ],
            check=True,
            capture_output=True,
            timeout=START_SECONDS + 10,
        )
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*pg_ctl, "-m", "immediate", "-w", "-t", "30", "stop"],
            capture_output=True,
            timeout=40,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_two_sweep_folders_share_one_study(postgres_url, tmp_path):
    crops = tmp_path / "bacteria"
    synth_bacteria(crops, per_class=20, seed=0, min_size=16, max_size=24)
    options = {"data": [str(crops)], "size": 16, "epochs": 2, "threads": 1}
    common = {"storage": postgres_url, "study": "shared", "quiet": True, "report": False}
    first = run_sweep(tmp_path / "machine a", ["lr=log:1e-3:0.3"], 2, **common, **options)
    assert first.counts["complete"] == 2
    # A second machine, its own folder, the same study: it runs only the missing trial.
    second = run_sweep(tmp_path / "machine b", ["lr=log:1e-3:0.3"], 3, **common, **options)
    assert second.counts["complete"] == 3
    assert sorted(p.name for p in (tmp_path / "machine a" / "trials").iterdir()) == [
        "0000",
        "0001",
    ]
    assert [p.name for p in (tmp_path / "machine b" / "trials").iterdir()] == ["0002"]
    assert not (tmp_path / "machine b" / "sweep.db").exists()
    # The server's own tables say the same, read without Optuna.
    with psycopg2.connect(postgres_url.replace("+psycopg2", "")) as connection:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT t.state, count(*) FROM trials t JOIN studies s USING (study_id) "
            "WHERE s.study_name = 'shared' GROUP BY t.state"
        )
        assert dict(cursor.fetchall()) == {"COMPLETE": 3}
    connection.close()
    # Other settings cannot join the study.
    with pytest.raises(CnnlabError, match="started with other settings"):
        run_sweep(tmp_path / "machine c", ["lr=log:1e-3:0.3"], 3, **common, **options, wd=0.1)
