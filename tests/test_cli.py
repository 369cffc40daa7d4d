"""The command line: what a user types, what they see, and the exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from cnnlab.cli import main

MODULE = [sys.executable, "-m", "cnnlab"]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("cnnlab: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_data_summary_of_mnist_matches_known_counts(capsys):
    code, out, _ = run(capsys, "data", "summary", "mnist", "--json")
    assert code == 0
    summary = json.loads(out)
    assert list(summary["train"]["classes"].values()) == MNIST_TRAIN_COUNTS
    assert list(summary["test"]["classes"].values()) == MNIST_TEST_COUNTS
    assert summary["train"]["bit_depth"] == 8 and summary["train"]["height"] == [28, 28]
    code, out, _ = run(capsys, "data", "summary", "mnist")
    assert "5,923" in out and "60000" in out


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "crops"
    assert (
        main(["synth", "bacteria", "--out", str(out), "--per-class", "12", "--max-size", "40"]) == 0
    )
    return out


def test_synth_then_summary_of_folders(capsys, synth_dir):
    code, out, _ = run(capsys, "data", "summary", str(synth_dir), "--pattern", "*.tif", "--json")
    assert code == 0
    info = json.loads(out)["all"]
    assert info["classes"] == {"1cell": 12, "2cell": 12, "groups": 12, "rien": 12}
    assert info["bit_depth"] == 16
    code, _, err = run(capsys, "synth", "bacteria", "--out", str(synth_dir))
    assert_one_line_error(code, err, "made already", "--overwrite")


def test_data_samples_draws_a_grid(capsys, synth_dir, tmp_path):
    from PIL import Image

    out = tmp_path / "samples grid.png"
    code, printed, _ = run(
        capsys, "data", "samples", str(synth_dir), "--out", str(out), "--per-class", "3"
    )
    assert code == 0 and printed.strip() == str(out)
    # The command draws exactly what the Python function draws for the same data and options.
    from cnnlab.data import load_folders
    from cnnlab.inspect.plots import plot_samples

    same = tmp_path / "api.png"
    plot_samples(load_folders(synth_dir), same, per_class=3, seed=0)
    with Image.open(out) as image, Image.open(same) as expected:
        assert image.size == expected.size and image.tobytes() == expected.tobytes()


def test_data_samples_draws_intensity_histograms_per_class(capsys, synth_dir, tmp_path):
    from PIL import Image

    out = tmp_path / "histograms.png"
    code, printed, _ = run(
        capsys, "data", "samples", str(synth_dir), "--histogram", "--out", str(out)
    )
    assert code == 0 and printed.strip() == str(out)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.height > image.width / 2  # a row per class
    code, _, err = run(capsys, "data", "samples", str(synth_dir), "--histogram", "--bins", "0")
    assert_one_line_error(code, err, "--bins 0")


def test_train_predict_evaluate_on_folders(capsys, synth_dir, tmp_path):
    out = tmp_path / "run"
    code, printed, err = run(
        capsys,
        "train",
        "--data",
        str(synth_dir),
        "--size",
        "24",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--quiet",
        "--no-report",
        "--split",
        "50,25,25",
    )
    assert code == 0, err
    # Results go to stdout (`cnnlab train > log.txt` keeps them); --quiet prints only the last line.
    assert printed.count("\n") == 1 and printed.startswith("cnnlab: test accuracy")
    assert "accuracy" not in err
    code, out_csv, _ = run(capsys, "predict", str(out), str(synth_dir / "rien"))
    assert code == 0
    rows = out_csv.strip().splitlines()
    assert rows[0] == "path,predicted,p_1cell,p_2cell,p_groups,p_rien" and len(rows) == 13
    code, text, _ = run(capsys, "evaluate", str(out), "--data", str(synth_dir), "--json")
    assert code == 0
    assert json.loads(text)["all"]["n"] == 48


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["train", "--model", "lenett5"], ["lenett5", "lenet5"]),
        (["train", "--optimizer", "sgdd"], ["--optimizer", "sgd"]),
        (["train", "--size", "8"], ["8x8", "lenet5"]),
        (["train", "--data", "/no/such/folder"], ["/no/such/folder"]),
        (["train", "--split", "60,30,10"], ["--split", "mnist"]),
        (["data", "summary", "/no/such/folder"], ["/no/such/folder"]),
        (["predict", "/no/such/model", "x.png"], ["/no/such/model"]),
        (["evaluate", "/no/such/model"], ["/no/such/model"]),
        (["train", "--config", "/no/such.toml"], ["/no/such.toml"]),
        (["train", "--resume", "/no/such/run"], ["/no/such/run"]),
        (["train", "--resume", "/no/such/run", "--lr", "9"], ["--resume", "--lr"]),
        (["predict", "/no/such/model", "x.png", "--out", "/no/such/dir/p.csv"], ["/no/such/dir"]),
        (["train", "--seed", "-1"], ["--seed"]),
        (["summary", "lenet7"], ["unknown model 'lenet7'", "'lenet5'", "run folder"]),
    ],
)
def test_bad_input_gets_one_line_and_exit_code_2(capsys, args, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *args)
    assert_one_line_error(code, err, *fragments)
    assert list(tmp_path.iterdir()) == []  # nothing written, no empty run folder


def test_models_lists_every_network(capsys):
    from cnnlab.models import list_models

    code, out, _ = run(capsys, "models")
    assert code == 0
    for name in list_models():
        assert name in out
    assert "61,706" in out


def test_console_script_runs_and_reports_errors_without_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cnnlab.cli", "predict", str(tmp_path), "x.png"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("cnnlab: error:") and "Traceback" not in done.stderr


# Registered before main(), so that atexit runs it after main's handler (last in, first out).
EXIT_PROBE = """
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count(), flush=True))
from cnnlab.cli import main
code = main(["models"])
print("frozen after main:", gc.get_freeze_count(), flush=True)
handlers = atexit._ncallbacks()
main(["models"])
print("handlers added by a second call:", atexit._ncallbacks() - handlers, flush=True)
sys.exit(code)
"""


def test_the_command_skips_the_last_collection_only_at_exit():
    # Python's exit would collect every object PyTorch made (0.43-0.90 s, bench/phases.py):
    # the command freezes them at exit instead, once, and an in-process caller keeps its
    # collector.
    done = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "frozen after main: 0" in lines
    assert "handlers added by a second call: 0" in lines
    frozen = [line for line in lines if line.startswith("frozen at exit:")]
    assert len(frozen) == 1 and int(frozen[0].split(":")[1]) > 0


def test_evaluate_and_samples_skip_a_broken_file_when_asked(
    capsys, synth_dir, tmp_path, train_quietly
):
    # Their error for a broken file suggests --skip-bad: both commands must have it.
    data = tmp_path / "crops"
    shutil.copytree(synth_dir, data)
    whole = next((data / "1cell").glob("*.tif")).read_bytes()
    (data / "1cell" / "broken.tif").write_bytes(whole[: len(whole) // 2])
    run_dir = train_quietly(synth_dir, tmp_path / "run", size="24", epochs=1, batch_size=8)

    code, _, err = run(capsys, "evaluate", str(run_dir), "--data", str(data))
    assert_one_line_error(code, err, "broken.tif", "--skip-bad")
    code, text, err = run(
        capsys, "evaluate", str(run_dir), "--data", str(data), "--skip-bad", "--json"
    )
    assert code == 0, err
    assert json.loads(text)["all"]["n"] == 48  # the 48 good crops; the broken one left out
    assert "skipped 1 unreadable file" in err and "broken.tif" in err
    # Without --data the run's own files are read: the flags that choose files do not apply.
    for flag in ("--skip-bad", "--convert-bit-depth"):
        code, _, err = run(capsys, "evaluate", str(run_dir), flag)
        assert_one_line_error(code, err, flag, "--data")
    code, _, err = run(capsys, "evaluate", str(run_dir), "--pattern", "*.tif")
    assert_one_line_error(code, err, "--pattern", "--data")

    picture = tmp_path / "samples.png"
    code, _, err = run(capsys, "data", "samples", str(data), "--out", str(picture))
    assert_one_line_error(code, err, "broken.tif", "--skip-bad")
    assert not picture.exists()
    code, _, err = run(capsys, "data", "samples", str(data), "--out", str(picture), "--skip-bad")
    assert code == 0, err
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_ctrl_c_while_the_command_still_loads_is_one_line_and_130(tmp_path):
    import os
    import signal
    import time
    from pathlib import Path

    command = Path(sys.executable).parent / "cnnlab"
    if not command.exists():
        pytest.skip("the cnnlab command is not installed beside this Python")
    # At 0.3 s the command is loading PyTorch (about a second); later, main() answers alike.
    # `python -m cnnlab` is how --nproc starts its processes.
    for delay, how in ((0.3, [str(command)]), (0.6, [str(command)]), (0.3, MODULE)):
        started = subprocess.Popen(
            [*how, "train", "--out", str(tmp_path / f"run{delay}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        os.kill(started.pid, signal.SIGINT)
        _, err = started.communicate(timeout=60)
        assert started.returncode == 130, err
        assert "Traceback" not in err and err.strip().startswith("cnnlab: interrupted"), err
        assert len(err.strip().splitlines()) == 1, err


def test_train_warns_of_options_its_other_options_leave_idle(capsys, synth_dir, tmp_path):
    code, _, err = run(
        capsys, "train", "--data", str(synth_dir), "--size", "24", "--epochs", "1",
        "--schedule", "cosine", "--step-size", "3", "--optimizer", "adam",
        "--out", str(tmp_path / "run"), "--quiet", "--no-report",
    )  # fmt: skip
    assert code == 0
    warned = [line for line in err.splitlines() if line.startswith("cnnlab: warning: --")]
    assert warned == [
        "cnnlab: warning: --step-size has no effect with --schedule cosine: it shapes "
        "--schedule step only"
    ]
