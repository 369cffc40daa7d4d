"""The run folder contract: where a run grows, how it replaces an old one, what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.files import read_json, write_json
from cnnlab.runs import folder as runs


def make_run(folder: Path, marker: str = "old", finished: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", {"train": {}, "resolved": {}, "model": marker})
    write_json(folder / "metrics.json", {"marker": marker})
    if finished:
        write_json(folder / "run.json", {"marker": marker})
    return folder


def test_a_new_run_appears_only_when_complete(tmp_path):
    out = tmp_path / "runs" / "a"
    runs.check_target(out, overwrite=False)
    partial = runs.begin(out)
    assert partial == tmp_path / "runs" / ".a.partial" and not out.exists()
    write_json(partial / "config.json", {"train": {}, "resolved": {}, "model": "new"})
    with pytest.raises(CnnlabError, match="not finished; continue it with --resume"):
        runs.complete(partial, out, overwrite=False)
    write_json(partial / "run.json", {})
    runs.complete(partial, out, overwrite=False)
    assert runs.is_finished(out) and not partial.exists()


def test_replacing_keeps_the_old_run_whole_until_the_new_one_is_in_place(tmp_path):
    out = make_run(tmp_path / "a")
    runs.check_target(out, overwrite=True)
    partial = runs.begin(out)
    assert read_json(out / "metrics.json") == {"marker": "old"}
    make_run(partial, "new", finished=False)
    write_json(partial / "run.json", {})
    runs.complete(partial, out, overwrite=True)
    assert read_json(out / "metrics.json") == {"marker": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_a_replacement_cut_between_its_two_renames_is_finished_later(tmp_path):
    out = make_run(tmp_path / "a")
    partial = make_run(runs.partial_of(out), "new")
    # The state after the old run was set aside and before the new one moved in.
    os.rename(out, tmp_path / ".a.replaced")
    runs.complete(partial, out, overwrite=True)
    assert read_json(out / "metrics.json") == {"marker": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_an_old_run_left_aside_is_removed_once_the_new_one_is_in_place(tmp_path):
    make_run(tmp_path / ".a.replaced")
    out = make_run(tmp_path / "a", "new")
    assert runs.locate(out) == (out, tmp_path / ".a.partial")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_an_unfinished_target_keeps_what_was_set_aside(tmp_path):
    aside = make_run(tmp_path / ".a.replaced")
    runs.locate(tmp_path / "a")
    assert aside.exists()


@pytest.mark.parametrize(
    ("setup", "overwrite", "message"),
    [
        (lambda out: out.write_text("x"), True, "exists and is not a folder"),
        (lambda out: (out / "f.txt").write_text("x"), False, r"not a cnnlab run folder.*\(it"),
        (lambda out: (out / "f.txt").write_text("x"), True, "not a cnnlab run folder"),
        (make_run, False, "holds a run already; choose another folder or pass --overwrite"),
        (lambda out: (out / "config.json").write_text("{}"), True, "not a cnnlab run folder"),
        (lambda out: make_run(runs.partial_of(out)), False, "an interrupted run"),
    ],
)
def test_targets_that_are_refused(tmp_path, setup, overwrite, message):
    out = tmp_path / "a"
    if "not a folder" not in message:
        out.mkdir()
    setup(out)
    with pytest.raises(CnnlabError, match=message):
        runs.check_target(out, overwrite)


def test_a_target_below_a_file_is_refused_naming_the_file(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CnnlabError, match=r"file\.txt is a file"):
        runs.check_target(tmp_path / "file.txt" / "sub", overwrite=False)


def test_extending_a_finished_run_works_on_a_copy(tmp_path):
    out = make_run(tmp_path / "a")
    (out / "report.html").write_text("old report")

    def record(copy: Path) -> None:
        write_json(copy / "metrics.json", {"marker": "planned"})

    partial = runs.begin_extension(out, record)
    assert runs.is_run_folder(partial) and not (partial / "run.json").exists()
    assert not (partial / "report.html").exists()  # made anew by the longer run
    assert read_json(partial / "metrics.json") == {"marker": "planned"}
    assert runs.is_finished(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.partial", "a"]


def test_a_partial_folder_names_its_run():
    assert runs.target_of("/x/runs/.a b.partial") == Path("/x/runs/a b")
    assert runs.target_of("/x/runs/a") == Path("/x/runs/a")


def test_completing_never_deletes_what_was_put_at_the_target_meanwhile(tmp_path):
    out = tmp_path / "a"
    partial = make_run(runs.partial_of(out), "new")
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(CnnlabError, match="cannot take its place"):
            runs.complete(partial, out, overwrite)
    assert (out / "notes.txt").read_text() == "precious" and runs.is_finished(partial)
    (out / "notes.txt").unlink()  # an empty folder is taken over
    runs.complete(partial, out, overwrite=False)
    assert read_json(out / "metrics.json") == {"marker": "new"}


def test_temporary_files_of_a_killed_write_are_tidied_away(tmp_path):
    partial = make_run(runs.partial_of(tmp_path / "a"), "new")
    (partial / "checkpoints").mkdir()
    (partial / ".metrics.json.x1y2.tmp").write_text("{")
    (partial / "checkpoints" / ".state.safetensors.abc.tmp").write_bytes(b"x")
    runs.complete(partial, tmp_path / "a", overwrite=False)
    assert sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*")) == [
        "checkpoints",
        "config.json",
        "metrics.json",
        "run.json",
    ]


def test_the_current_folder_and_its_parents_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in (tmp_path, tmp_path.parent):
        with pytest.raises(CnnlabError, match="holds the current folder"):
            runs.check_target(out, overwrite=True)
    with pytest.raises(CnnlabError, match="give a folder name"):
        runs.target_of("")


def test_a_linked_target_is_the_folder_it_links_to(tmp_path):
    real = make_run(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    assert runs.target_of(tmp_path / "link") == real


def test_one_process_at_a_time_trains_into_a_folder(tmp_path):
    out = tmp_path / "a"
    with (
        runs.lock(out),
        pytest.raises(runs.FolderBusy, match="another cnnlab process"),
        runs.lock(out),
    ):
        pass
    with runs.lock(out):  # released, and no lock file is left behind
        pass
    assert list(tmp_path.iterdir()) == []


def test_copies_left_by_a_killed_extension_are_removed(tmp_path):
    out = make_run(tmp_path / "a")
    (tmp_path / ".a.k3j2.copy").mkdir()
    runs.locate(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
