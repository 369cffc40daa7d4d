"""The review queue and the decisions file, through FastAPI's test client.

The queue's order is checked against losses computed here with ``F.cross_entropy`` from the
image files that the run's ``split.csv`` lists; the decisions file against the csv module.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from cnnlab.data.relabel import HEADER
from cnnlab.errors import CnnlabError
from cnnlab.export.saved import load
from cnnlab.serve.review import review_router


def _client(*folders: Path) -> TestClient:
    runs = [SimpleNamespace(id=f.name, path=f, model=load(f)) for f in folders]
    app = FastAPI()
    app.include_router(review_router(runs))
    return TestClient(app)


def _split_rows(run: Path) -> list[dict]:
    with (run / "split.csv").open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["subset"] in ("test", "valid")]


def _decisions(run: Path) -> list[dict]:
    with (run / "relabel.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == HEADER
        return list(reader)


def test_queue_is_ordered_by_loss_of_the_run_images(lenet_run: Path) -> None:
    rows = _split_rows(lenet_run)
    model = load(lenet_run)
    names = list(model.class_names)
    images = torch.from_numpy(np.stack([np.asarray(Image.open(r["path"])) for r in rows]))
    labels = torch.tensor([names.index(r["class"]) for r in rows])
    with torch.no_grad():
        logits = model(images[:, None].float())
    expected = F.cross_entropy(logits, labels, reduction="none").numpy()
    by_key = {r["path"]: (float(loss), r) for r, loss in zip(rows, expected, strict=True)}

    answer = _client(lenet_run).get("/api/review", params={"limit": 500}).json()
    items = answer["items"]
    assert answer["total"] == len(rows) == len(items)
    losses = [item["loss"] for item in items]
    assert losses == sorted(losses, reverse=True)
    assert [by_key[item["key"]][0] for item in items] == pytest.approx(losses, rel=1e-4, abs=1e-5)
    worst = items[0]
    row = by_key[worst["key"]][1]
    assert worst["true"] == row["class"] and worst["subset"] == row["subset"]
    assert worst["file"] == Path(row["path"]).name
    assert worst["predicted"] == max(worst["probabilities"], key=worst["probabilities"].get)
    assert sum(worst["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert worst["thumbnail"].startswith("data:image/png;base64,")
    assert worst["decision"] is None

    tests = _client(lenet_run).get("/api/review", params={"subset": "test", "limit": 3}).json()
    assert tests["total"] == sum(r["subset"] == "test" for r in rows)
    in_test = [item for item in items if item["subset"] == "test"]
    assert [i["key"] for i in tests["items"]] == [i["key"] for i in in_test[:3]]


def test_decisions_round_trip_and_persist_across_restarts(writable_run: Path) -> None:
    client = _client(writable_run)
    items = client.get("/api/review", params={"limit": 3}).json()["items"]
    first, second, third = (item["key"] for item in items)
    other = next(c for c in items[0]["probabilities"] if c != items[0]["true"])
    saved = client.post(
        "/api/review/decision",
        json={"run": writable_run.name, "key": first, "action": "relabel", "label": other},
    )
    assert saved.status_code == 200
    assert saved.json()["decision"] == {"action": "relabel", "label": other}
    client.post("/api/review/decision", json={"key": second, "action": "exclude"})
    client.post("/api/review/decision", json={"key": third, "action": "keep"})
    client.post("/api/review/decision", json={"key": third, "action": "undo"})

    rows = _decisions(writable_run)
    assert [(r["path"], r["action"], r["new_class"]) for r in rows] == [
        (first, "relabel", other),
        (second, "exclude", ""),
    ]
    assert rows[0]["true_class"] == items[0]["true"]
    assert rows[0]["predicted_class"] == items[0]["predicted"]
    assert float(rows[0]["loss"]) == pytest.approx(items[0]["loss"], rel=1e-5)
    assert rows[0]["subset"] == items[0]["subset"] and rows[0]["decided_at"]

    # A new server reads them back.
    again = _client(writable_run).get("/api/review", params={"limit": 3}).json()["items"]
    assert [item["decision"] for item in again] == [
        {"action": "relabel", "label": other},
        {"action": "exclude", "label": None},
        None,
    ]
    assert sorted(p.name for p in writable_run.iterdir() if "relabel" in p.name) == ["relabel.csv"]


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        ({"key": "nowhere.png", "action": "keep"}, 404, "not an image of the review"),
        ({"key": None, "action": "keep"}, 422, "key: field required"),
        ({"key": 5, "action": "keep"}, 422, "key 5: must be a string"),
        ({"action": None}, 422, "action: field required"),
        ({"action": "delete"}, 400, "action 'delete'"),
        ({"action": "relabel", "label": "zebra"}, 400, "label 'zebra'"),
        ({"action": "exclude", "label": "3"}, 400, "only 'relabel' takes a label"),
        ({"action": "keep", "run": "other"}, 404, "unknown run 'other'"),
        ({"action": "keep", "label": 3}, 422, "label 3: must be a string"),
    ],
)
def test_bad_decisions_are_refused_in_one_line(
    writable_run: Path, body: dict, status: int, match: str
) -> None:
    client = _client(writable_run)
    key = client.get("/api/review", params={"limit": 1}).json()["items"][0]["key"]
    answer = client.post("/api/review/decision", json={"key": key, **body})
    assert answer.status_code == status
    assert match in answer.json()["detail"] and "\n" not in answer.json()["detail"]
    assert not (writable_run / "relabel.csv").exists()


def test_an_empty_body_names_the_missing_field(writable_run: Path) -> None:
    answer = _client(writable_run).post("/api/review/decision", json={})
    assert answer.status_code == 422 and answer.json() == {"detail": "key: field required"}
    assert not (writable_run / "relabel.csv").exists()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"subset": "train"}, "subset 'train'"),
        ({"limit": "0"}, "limit '0'"),
        ({"offset": "-1"}, "offset '-1'"),
        ({"offset": "x"}, "offset 'x'"),
        ({"run": "nope"}, "unknown run 'nope'"),
    ],
)
def test_bad_queries_are_refused_in_one_line(lenet_run: Path, params: dict, match: str) -> None:
    answer = _client(lenet_run).get("/api/review", params=params)
    assert 400 <= answer.status_code < 500 and match in answer.json()["detail"]


def test_not_json_and_saved_model_folders(writable_run: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in ("model.json", "model.safetensors"):
        shutil.copy(writable_run / name, saved / name)
    client = _client(writable_run, saved)
    answer = client.post("/api/review/decision", content=b"{oops")
    assert answer.status_code == 422 and "JSON" in answer.json()["detail"]
    answer = client.get("/api/review", params={"run": "saved"})
    assert answer.status_code == 404 and "saved model folder" in answer.json()["detail"]
    assert sorted(p.name for p in saved.iterdir()) == ["model.json", "model.safetensors"]


def test_write_is_atomic_and_a_failed_write_changes_nothing(
    writable_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _client(writable_run)
    first, second = (i["key"] for i in client.get("/api/review?limit=2").json()["items"])
    client.post("/api/review/decision", json={"key": first, "action": "exclude"})
    before = (writable_run / "relabel.csv").read_bytes()

    def no_rename(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    # cnnlab.files writes a temporary file and renames it over the target: stop the rename.
    monkeypatch.setattr("cnnlab.files.replace", no_rename)
    answer = client.post("/api/review/decision", json={"key": second, "action": "exclude"})
    assert answer.status_code == 507 and "No space left" in answer.json()["detail"]
    assert (writable_run / "relabel.csv").read_bytes() == before
    assert not [p for p in writable_run.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    # The failed decision was not taken: the file and the queue still agree.
    items = client.get("/api/review?limit=2").json()["items"]
    assert [i["decision"] for i in items] == [{"action": "exclude", "label": None}, None]


def test_corrupt_decisions_file_stops_the_start(writable_run: Path) -> None:
    (writable_run / "relabel.csv").write_text("path,action,new_class\nx,maybe,\n")
    with pytest.raises(CnnlabError, match=r"relabel.csv, line 2: unknown action 'maybe'"):
        _client(writable_run)


def test_a_link_out_of_the_run_folder_is_refused(writable_run: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(",".join(HEADER) + "\n")
    (writable_run / "relabel.csv").symlink_to(outside)
    with pytest.raises(CnnlabError, match="outside the run folder"):
        _client(writable_run)
