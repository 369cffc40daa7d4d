"""From review to retraining: decisions made on the page, then ``cnnlab train --relabel``.

The new run must draw the same split as the reviewed one, carry the decisions (relabelled
images in their subset with the new class, excluded ones gone), keep a checked copy of the
file, and list the changes in its report.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cnnlab.cli.main import main
from cnnlab.data.relabel import APPLIED_NAME
from cnnlab.errors import CnnlabError
from cnnlab.export.saved import load
from cnnlab.files import read_json
from cnnlab.inspect.report.relabel import image_name
from cnnlab.runs.reading import load_run_split
from cnnlab.serve.review import review_router


def _manifest(run: Path) -> dict[str, tuple[str, str]]:
    with (run / "split.csv").open(newline="") as handle:
        return {row["path"]: (row["class"], row["subset"]) for row in csv.DictReader(handle)}


def test_review_decisions_train_a_new_run(
    writable_run: Path, digits_folder: Path, tmp_path: Path
) -> None:
    app = FastAPI()
    run = SimpleNamespace(id="old", path=writable_run, model=load(writable_run))
    app.include_router(review_router([run]))
    with TestClient(app) as client:
        items = client.get("/api/review", params={"limit": 3}).json()["items"]
        relabelled, excluded, kept = items
        new_class = next(c for c in relabelled["probabilities"] if c != relabelled["true"])
        for item, action, label in (
            (relabelled, "relabel", new_class),
            (excluded, "exclude", None),
            (kept, "keep", None),
        ):
            body = {"key": item["key"], "action": action, "label": label}
            assert client.post("/api/review/decision", json=body).status_code == 200
    decisions = writable_run / "relabel.csv"
    config = read_json(writable_run / "config.json")

    out = tmp_path / "relabelled"
    code = main(
        [
            "train",
            "--data",
            str(digits_folder),
            "--split",
            "80,10,10",
            "--model",
            "lenet5",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--threads",
            "1",
            "--seed",
            str(config["train"]["seed"]),
            "--relabel",
            str(decisions),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    old, new = _manifest(writable_run), _manifest(out)
    # The same split, less the excluded image; the relabelled one in its subset, new class.
    assert set(old) - set(new) == {excluded["key"]}
    assert new[relabelled["key"]] == (new_class, relabelled["subset"])
    assert new[kept["key"]] == old[kept["key"]]
    assert {k: v for k, v in new.items() if k != relabelled["key"]} == {
        k: v for k, v in old.items() if k not in (relabelled["key"], excluded["key"])
    }

    record = read_json(out / "config.json")["resolved"]["relabel"]
    copy = out / APPLIED_NAME
    assert copy.read_bytes() == decisions.read_bytes()
    assert record["sha256"] == hashlib.sha256(decisions.read_bytes()).hexdigest()
    assert (record["relabelled"], record["excluded"], record["kept"]) == (1, 1, 1)

    # Re-read later (report, review, resume): the copy is applied again.
    split = load_run_split(out, quiet=True)
    subset = dict(split.items())[relabelled["subset"]]
    label = subset.labels[subset.paths.index(relabelled["key"])]
    assert subset.class_names[int(label)] == new_class
    assert all(excluded["key"] not in d.paths for _, d in split.items())

    report = (out / "report.html").read_text()
    assert 'id="relabel"' in report and "Label decisions" in report
    # Named by the path under the data folder: a bare file name may be in several classes.
    for item in (relabelled, excluded):
        shown = Path(item["key"]).relative_to(digits_folder).as_posix()
        assert f'title="{item["key"]}">{shown}</code>' in report
    assert "<em>excluded</em>" in report

    # A review of the new run starts from the decisions it was trained with, so that a second
    # review adds to the first.
    app = FastAPI()
    app.include_router(review_router([SimpleNamespace(id="new", path=out, model=load(out))]))
    with TestClient(app) as client:
        answer = client.get("/api/review", params={"limit": 500}).json()
    shown = {item["key"]: item for item in answer["items"]}
    assert excluded["key"] not in shown and answer["total"] == len(shown)
    assert shown[relabelled["key"]]["true"] == new_class
    assert shown[relabelled["key"]]["decision"] == {"action": "relabel", "label": new_class}
    assert shown[kept["key"]]["decision"] == {"action": "keep", "label": None}
    assert not (out / "relabel.csv").exists()  # written at the first decision, not before

    # A changed copy is never applied silently.
    copy.write_text(copy.read_text() + f"{relabelled['key']}-x,keep,\n")
    with pytest.raises(CnnlabError, match="changed since the run was trained"):
        load_run_split(out)


def test_report_names_images_unambiguously() -> None:
    assert image_name("mnist/train/02676", []) == "mnist/train/02676"
    assert image_name("mnist/test/02676", []) != image_name("mnist/train/02676", [])
    assert image_name("/d/cells/a/1.tif", ["/d/cells"]) == "a/1.tif"
    # Of two folders, each image keeps its folder's name: a/1.tif is in both.
    folders = ["/d/cells", "/e/more"]
    assert image_name("/d/cells/a/1.tif", folders) == "d/cells/a/1.tif"
    assert image_name("/e/more/a/1.tif", folders) == "e/more/a/1.tif"
    assert image_name("/moved/a/1.tif", ["/d/cells"]) == "/moved/a/1.tif"
