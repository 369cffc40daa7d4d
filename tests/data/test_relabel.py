"""Label decisions applied to a split: folder data and MNIST, counted by hand; bad files."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data.relabel import (
    HEADER,
    Decision,
    format_decisions,
    read_decisions,
    relabel_split,
    summary_line,
    write_decisions,
)
from cnnlab.data.sources import DataSpec, load_manifest_split, load_split
from cnnlab.data.split import write_manifest
from cnnlab.errors import CnnlabError

CLASSES = ("a", "b", "c")
PER_CLASS = 10


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three classes of ten 8x8 gray PNGs, each image a distinct constant value."""
    root = tmp_path / "data"
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for number in range(PER_CLASS):
            value = label * PER_CLASS + number
            Image.fromarray(np.full((8, 8), value, np.uint8)).save(root / name / f"{number}.png")
    return root


def _spec(root: Path) -> DataSpec:
    return DataSpec(data=(str(root),), split=(60, 30, 10), seed=3, cache=False)


def _decisions(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    write_decisions(path, [Decision(path=p, action=a, new_class=c) for p, a, c in rows])
    return path


def _labels(dataset) -> dict[str, str]:
    return {
        p: dataset.class_names[int(label)]
        for p, label in zip(dataset.paths, dataset.labels, strict=True)
    }


def test_folder_decisions_relabel_exclude_and_keep_in_place(folder: Path, tmp_path: Path) -> None:
    split = load_split(_spec(folder))
    test, valid = split.test.paths, split.valid.paths
    relabelled, excluded, kept = test[0], valid[1], valid[2]
    new_class = next(c for c in CLASSES if c != _labels(split.test)[relabelled])
    # The excluded image is named by a relative path through a link: the same file.
    link = tmp_path / "link"
    os.symlink(folder, link)
    via_link = os.path.relpath(link / Path(excluded).relative_to(folder))
    file = _decisions(
        tmp_path / "relabel.csv",
        [
            (relabelled, "relabel", new_class),
            (via_link, "exclude", ""),
            (kept, "keep", ""),
            (str(folder / "a" / "99.png"), "exclude", ""),  # not in the data
        ],
    )
    with pytest.warns(UserWarning, match=r"1 decision\(s\) name images that are not in the data"):
        changed, record = relabel_split(split, file)

    # Same split: every subset keeps its images in their order, less the one excluded.
    assert changed.train.paths == split.train.paths
    assert changed.test.paths == test
    assert changed.valid.paths == tuple(p for p in valid if p != excluded)
    assert len(changed.valid) == len(split.valid) - 1
    before, after = _labels(split.test), _labels(changed.test)
    assert after[relabelled] == new_class
    assert {p: c for p, c in after.items() if p != relabelled} == {
        p: c for p, c in before.items() if p != relabelled
    }
    assert _labels(changed.valid)[kept] == _labels(split.valid)[kept]
    assert _labels(changed.train) == _labels(split.train)
    # The images move with their labels: pixel values identify the files (class * 10 + number).
    position = changed.valid.paths.index(kept)
    original = split.valid.paths.index(kept)
    assert np.array_equal(changed.valid.images[position], split.valid.images[original])
    assert record["relabelled"] == 1 and record["excluded"] == 1
    assert record["kept"] == 1 and record["unmatched"] == 1 and record["decisions"] == 4
    assert summary_line(record) == (
        f"relabel: 1 relabelled, 1 excluded, 1 kept, 1 not in the data, from {file.absolute()}"
    )
    old_class = _labels(split.valid)[excluded]
    assert sorted(map(tuple, record["changes"])) == sorted(
        [
            (relabelled, "test", before[relabelled], new_class),
            (excluded, "valid", old_class, None),
        ]
    )


def test_manifest_reread_with_the_decisions_gives_the_same_split(
    folder: Path, tmp_path: Path
) -> None:
    split = load_split(_spec(folder))
    target = split.valid.paths[0]
    file = _decisions(
        tmp_path / "relabel.csv",
        [
            (target, "relabel", "c" if _labels(split.valid)[target] != "c" else "a"),
            (split.test.paths[0], "exclude", ""),
        ],
    )
    changed, _ = relabel_split(split, file)
    manifest = write_manifest(changed, tmp_path / "split.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no image "left out of the manifest"
        again = load_manifest_split(_spec(folder), manifest, file)
    for name, dataset in changed.items():
        other = dict(again.items())[name]
        assert other.paths == dataset.paths
        assert other.labels.tolist() == dataset.labels.tolist()
    # Without the decisions the manifest does not fit the data: never a silent wrong result.
    with pytest.raises(CnnlabError, match=r"puts .* in class"):
        load_manifest_split(_spec(folder), manifest)


def test_mnist_keys(tmp_path: Path) -> None:
    split = load_split(DataSpec(split=(90, 10), seed=0))
    test_key, valid_key = "mnist/test/00017", split.valid.paths[5]
    old = _labels(split.test)[test_key]
    new = str((int(old) + 1) % 10)
    file = _decisions(
        tmp_path / "relabel.csv", [(test_key, "relabel", new), (valid_key, "exclude", "")]
    )
    changed, record = relabel_split(split, file)
    assert len(changed.test) == 10_000 and len(changed.valid) == len(split.valid) - 1
    assert valid_key not in changed.valid.paths
    assert _labels(changed.test)[test_key] == new
    differs = (changed.test.labels != split.test.labels).nonzero().flatten().tolist()
    assert differs == [17]
    assert record["relabelled"] == 1 and record["excluded"] == 1 and record["unmatched"] == 0


def test_file_round_trip(tmp_path: Path) -> None:
    decisions = [
        Decision("x/a.png", "relabel", "b", "test", "a", "b", "2.5", "2026-01-01T00:00:00+00:00"),
        Decision("x/b, with comma.png", "exclude", subset="valid"),
    ]
    write_decisions(tmp_path / "relabel.csv", decisions)
    text = (tmp_path / "relabel.csv").read_text()
    assert text.splitlines()[0] == ",".join(HEADER)
    read = read_decisions(tmp_path / "relabel.csv")
    assert [d.row() for d in read] == [d.row() for d in decisions]
    assert format_decisions(read) == text


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"line 1: expected the header"),
        ("path,action\nx,keep\n", r"line 1: expected the header"),
        ("path,action,new_class,colour\n", r"line 1: unknown .*colour"),
        ("path,action,new_class\nx,keep,\ny,delete,\n", r"line 3: unknown action 'delete'"),
        ("path,action,new_class\nx,relabel,\n", r"line 2: 'relabel' needs the new class"),
        ("path,action,new_class\nx,exclude,b\n", r"line 2: new_class 'b' given for 'exclude'"),
        ("path,action,new_class\nx,keep,\nx,exclude,\n", r"line 3: x is decided twice"),
        ("path,action,new_class\nx,keep\n", r"line 2: expected 3 fields, found 2"),
        ("path,action,new_class\n,keep,\n", r"line 2: empty path"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(CnnlabError, match=match) as error:
        read_decisions(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_unknown_class_and_missing_file(folder: Path, tmp_path: Path) -> None:
    split = load_split(_spec(folder))
    file = _decisions(tmp_path / "r.csv", [(split.test.paths[0], "relabel", "zebra")])
    with pytest.raises(CnnlabError, match=rf"{file}, line 2: unknown class 'zebra'"):
        relabel_split(split, file)
    with pytest.raises(CnnlabError, match="no such decisions file"):
        read_decisions(tmp_path / "missing.csv")


def test_decisions_for_other_data_are_an_error(folder: Path, tmp_path: Path) -> None:
    """Not a warning and a run trained on the unchanged labels: a silent wrong result."""
    split = load_split(_spec(folder))
    file = _decisions(
        tmp_path / "relabel.csv",
        [("mnist/test/00017", "exclude", ""), (str(tmp_path / "x" / "y.png"), "keep", "")],
    )
    with pytest.raises(CnnlabError) as error:
        relabel_split(split, file)
    message = str(error.value)
    assert message.startswith(f"--relabel {file}: none of its 2 decision(s) names an image of ")
    assert f"--data {folder} " in message and "\n" not in message
    mnist = load_split(DataSpec(split=(90, 10), seed=0))
    other = _decisions(tmp_path / "other.csv", [(split.test.paths[0], "exclude", "")])
    with pytest.raises(
        CnnlabError, match=r"none of its 1 decision\(s\) names an image of --data mnist"
    ):
        relabel_split(mnist, other)


def test_an_empty_decisions_file_changes_nothing(folder: Path, tmp_path: Path) -> None:
    split = load_split(_spec(folder))
    file = _decisions(tmp_path / "relabel.csv", [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        changed, record = relabel_split(split, file)
    assert changed.test.paths == split.test.paths
    assert summary_line(record) == f"relabel: 0 relabelled, 0 excluded, from {file.absolute()}"
