"""Two reviews of one run lose no decision: the file is merged under a lock, never overwritten.

Two servers (two applications, as two ``cnnlab serve`` processes would be) decide on the same
run; many stores write at once from threads, each with its own lock file descriptor, as
processes would; the file is then read back with the csv module and counted.
"""

from __future__ import annotations

import csv
import fcntl
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cnnlab.data.relabel import HEADER, Decision
from cnnlab.export.saved import load
from cnnlab.serve import decisions
from cnnlab.serve.decisions import LOCK_NAME, DecisionStore
from cnnlab.serve.review import review_router


def _client(folder: Path) -> TestClient:
    app = FastAPI()
    app.include_router(review_router([SimpleNamespace(id="r", path=folder, model=load(folder))]))
    return TestClient(app)


def _rows(folder: Path) -> dict[str, tuple[str, str]]:
    with (folder / "relabel.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == HEADER
        return {row["path"]: (row["action"], row["new_class"]) for row in reader}


def test_two_servers_on_one_run_keep_each_others_decisions(writable_run: Path) -> None:
    # Both started before either decides: each holds the (empty) decisions of its start.
    first, second = _client(writable_run), _client(writable_run)
    keys = [i["key"] for i in first.get("/api/review", params={"limit": 3}).json()["items"]]
    assert first.post("/api/review/decision", json={"key": keys[0], "action": "exclude"}).is_success
    assert second.post("/api/review/decision", json={"key": keys[1], "action": "keep"}).is_success
    assert first.post("/api/review/decision", json={"key": keys[2], "action": "keep"}).is_success
    assert _rows(writable_run) == {
        keys[0]: ("exclude", ""),
        keys[1]: ("keep", ""),
        keys[2]: ("keep", ""),
    }
    # An undo on one server removes only its image, and each page shows the other's decisions.
    assert second.post("/api/review/decision", json={"key": keys[0], "action": "undo"}).is_success
    assert _rows(writable_run) == {keys[1]: ("keep", ""), keys[2]: ("keep", "")}
    for client in (first, second):
        items = client.get("/api/review", params={"limit": 3}).json()["items"]
        kept = {"action": "keep", "label": None}
        assert [i["decision"] for i in items] == [None, kept, kept]
    assert not (writable_run / LOCK_NAME).exists()


def test_concurrent_writers_lose_no_decision(tmp_path: Path) -> None:
    writers, each = 4, 25
    stores = [DecisionStore(tmp_path) for _ in range(writers)]  # all start from no file
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(number: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(each):
                key = f"w{number}/{i:03d}.png"
                stores[number].set(key, Decision(path=key, action="exclude"))
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and not any(t.is_alive() for t in threads)
    rows = _rows(tmp_path)
    assert len(rows) == writers * each
    assert set(rows) == {f"w{n}/{i:03d}.png" for n in range(writers) for i in range(each)}
    # The last writer's memory holds everyone's decisions: it read them back under the lock.
    assert max(len(store.decisions) for store in stores) == writers * each
    assert sorted(os.listdir(tmp_path)) == ["relabel.csv"]


def test_a_held_lock_is_waited_for_then_refused_and_a_stale_one_reused(
    writable_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(writable_run)
    key = client.get("/api/review", params={"limit": 1}).json()["items"][0]["key"]
    monkeypatch.setattr(decisions, "LOCK_TIMEOUT", 0.3)
    lock = writable_run / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process is writing
        answer = client.post("/api/review/decision", json={"key": key, "action": "keep"})
        assert answer.status_code == 503
        assert "another process" in answer.json()["detail"]
        assert not (writable_run / "relabel.csv").exists()
    finally:
        os.close(fd)  # a killed holder: its lock is gone, its file is left behind
    assert lock.exists()
    answer = client.post("/api/review/decision", json={"key": key, "action": "keep"})
    assert answer.status_code == 200 and _rows(writable_run) == {key: ("keep", "")}
    assert not lock.exists()


def test_a_link_as_the_lock_file_is_not_followed(tmp_path: Path) -> None:
    run, outside = tmp_path / "run", tmp_path / "outside.txt"
    run.mkdir()
    (run / LOCK_NAME).symlink_to(outside)
    store = DecisionStore(run)
    with pytest.raises(OSError):
        store.set("a.png", Decision(path="a.png", action="keep"))
    assert not outside.exists() and not (run / "relabel.csv").exists()
