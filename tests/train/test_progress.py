"""Training progress: ``fit(verbose=0|1|2)`` on a terminal, in a log, and in a Jupyter kernel."""

from __future__ import annotations

import io
import re
import sys
import textwrap

import pytest
import torch

from cnnlab.data.dataset import ImageDataset
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.synth import synth_bacteria
from cnnlab.train import callbacks, fit
from cnnlab.train.callbacks import (
    CallbackList,
    CSVLogger,
    EpochLog,
    ProgressBar,
    epoch_line,
    progress,
)
from cnnlab.train.run import RunConfig, run_training

EPOCHS = 3
STEPS = 5  # 40 images in batches of 8
LINE = re.compile(
    r"epoch +(\d+)/3  loss (\S+)  acc (\S+)  val_loss (\S+)  val_acc (\S+)  lr \S+  \S+s"
)


def tiny(n: int, seed: int) -> ImageDataset:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randint(0, 200, (n, 1, 6, 6), generator=generator, dtype=torch.uint8)
    images[labels == 1, :, :3] += 50  # learnable: class 1 is brighter on top
    return ImageDataset(images, labels, ("a", "b"), tuple(f"{i}.png" for i in range(n)))


def train_tiny(verbose: int, callbacks=()):
    model = create_model("mlp", in_chans=1, num_classes=2, input_size=(6, 6), hidden=(8,))
    return fit(
        model,
        tiny(40, 0),
        tiny(10, 1),
        callbacks=callbacks,
        epochs=EPOCHS,
        batch_size=8,
        device="cpu",
        verbose=verbose,
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drawing_every_batch(open_bar):
    """``open_bar`` with tqdm's redraws at every update, however fast (tqdm reads its
    ``TQDM_MININTERVAL`` when imported, too early for a test to set)."""

    def opened(*args, **kwargs):
        bar = open_bar(*args, **kwargs)
        bar.mininterval = 0
        return bar

    return opened


def test_verbose_0_prints_nothing(capfd):
    train_tiny(0)
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("verbose", [1, 2])
def test_off_a_terminal_each_epoch_is_one_line_with_the_history_figures(verbose, capfd):
    history = train_tiny(verbose)
    out, err = capfd.readouterr()
    assert err == "" and "\r" not in out
    lines = out.splitlines()
    assert len(lines) == EPOCHS
    for line, row in zip(lines, history.rows, strict=True):
        fields = LINE.fullmatch(line)
        assert fields is not None, line
        assert int(fields[1]) == row["epoch"]
        figures = ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy")
        for value, key in zip(fields.groups()[1:], figures, strict=True):
            assert float(value) == pytest.approx(row[key], abs=5e-5)


def test_on_a_terminal_a_bar_with_the_running_loss_gives_way_to_the_epoch_line(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(callbacks, "open_bar", drawing_every_batch(callbacks.open_bar))
    history = train_tiny(1)
    text = terminal.getvalue()
    segments = text.split("\n")
    assert len(segments) == EPOCHS + 1 and segments[-1] == ""
    for segment, row in zip(segments[:-1], history.rows, strict=True):
        *frames, shown = segment.split("\r")
        assert shown == epoch_line(row, EPOCHS)
        bars = [frame for frame in frames if frame.strip()]
        # Drawn at the start and after each of the 5 batches, with the running figures.
        assert len(bars) == STEPS + 1
        assert bars[0].startswith(f"epoch {row['epoch']}/{EPOCHS}:") and f"0/{STEPS}" in bars[0]
        assert f"{STEPS}/{STEPS}" in bars[-1] and re.search(r"loss \d\.\d{4}  acc \d", bars[-1])


def test_tqdm_disable_leaves_only_the_lines_on_a_terminal(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    train_tiny(1)
    assert "\r" not in terminal.getvalue() and terminal.getvalue().count("\n") == EPOCHS


def test_a_progress_callback_of_ones_own_replaces_verbose(capfd):
    log = io.StringIO()
    train_tiny(1, callbacks=[EpochLog(log)])
    assert capfd.readouterr() == ("", "")
    assert len(log.getvalue().splitlines()) == EPOCHS


def test_verbose_is_0_1_or_2():
    with pytest.raises(CnnlabError, match="verbose must be 0"):
        train_tiny(3)


def test_only_callbacks_with_a_batch_hook_make_the_loop_read_every_loss(tmp_path):
    # Reading the loss back after each step waits for a GPU: only a drawn bar needs it.
    for hooks, wanted in (
        ([EpochLog(), CSVLogger(tmp_path / "h.csv")], False),
        ([progress(1)], False),  # pytest's stdout is no terminal: lines only
        ([progress(1, Terminal())], True),
        ([ProgressBar()], True),
    ):
        assert CallbackList(hooks).wants("on_batch_end") is wanted


def test_the_run_prints_epoch_lines_on_stderr_and_quiet_only_the_result(tmp_path, capfd):
    data = tmp_path / "bacteria"
    synth_bacteria(data, per_class=6, seed=0, min_size=12, max_size=16)
    options = {"data": [str(data)], "size": "12", "epochs": 2, "report": False, "cache": False}
    for quiet in (False, True):
        out = tmp_path / f"run-{quiet}"
        run_training(RunConfig.from_options({**options, "out": str(out), "quiet": quiet}))
        printed, err = capfd.readouterr()
        epoch_lines = [line for line in err.splitlines() if line.startswith("epoch ")]
        assert len(epoch_lines) == (0 if quiet else 2)
        assert not any(line.startswith("epoch ") for line in printed.splitlines())
        assert printed.splitlines()[-1].startswith("cnnlab: test accuracy")
        if quiet:
            assert len(printed.splitlines()) == 1


# ----------------------------------------------------------------------------- Jupyter

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
WIDGET = "application/vnd.jupyter.widget-view+json"


def run_notebook(*cells: str) -> nbformat.NotebookNode:
    """``cells`` run top to bottom in a fresh kernel, with their outputs and widgets' state.

    Jupyter's ``python3`` kernel starts ``python``, which jupyter_client replaces with its own
    interpreter: this venv's.
    """
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(cell)) for cell in cells]
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    return notebook


def outputs_of(notebook: nbformat.NotebookNode) -> list[dict]:
    return [output for cell in notebook.cells for output in cell.outputs]


# The same tiny training as train_tiny, in the kernel.
FIT = f"""
import torch, cnnlab
labels = torch.arange(40) % 2
images = torch.randint(0, 250, (40, 1, 6, 6), dtype=torch.uint8)
train = cnnlab.ImageDataset(images, labels, ("a", "b"), ("x.png",) * 40)
model = cnnlab.create_model("mlp", in_chans=1, num_classes=2, input_size=(6, 6), hidden=(8,))
cnnlab.fit(model, train, train, epochs={EPOCHS}, batch_size=8, device="cpu", verbose=1)
None
"""


def test_in_jupyter_each_epoch_is_a_widget_that_ends_with_its_figures_and_no_text_bar():
    pytest.importorskip("ipywidgets")  # the extra cnnlab[notebook]
    notebook = run_notebook(FIT)
    outputs = outputs_of(notebook)
    widgets = [output for output in outputs if WIDGET in output.get("data", {})]
    assert len(widgets) == EPOCHS
    streams = [output for output in outputs if output["output_type"] == "stream"]
    assert streams == []  # no text bar, no epoch lines beside the widgets, no warning
    # The widgets' last state, as nbclient saved it: each bar full, with its epoch's figures.
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    models = [model["state"] for model in state.values()]
    bars = [model["value"] for model in models if model.get("_model_name") == "FloatProgressModel"]
    assert bars == [STEPS] * EPOCHS
    texts = [  # tqdm may space the widget's text with figure spaces
        str(model.get("value")).replace("\u2007", " ")
        for model in models
        if model.get("_model_name") == "HTMLModel"
    ]
    summaries = [text for text in texts if re.search(r"loss \S+  acc \S+  val_loss \S+", text)]
    assert len(summaries) == EPOCHS, texts


def test_in_jupyter_without_ipywidgets_plain_lines_and_no_warning():
    outputs = outputs_of(
        run_notebook("import sys\nsys.modules['ipywidgets'] = None\nimport cnnlab", FIT)
    )
    assert not any(WIDGET in output.get("data", {}) for output in outputs)
    text = "".join(output.get("text", "") for output in outputs)
    assert "IProgress" not in text and "\r" not in text
    assert len([line for line in text.splitlines() if LINE.fullmatch(line)]) == EPOCHS


def test_a_bar_cut_short_by_a_diverging_loss_is_closed_before_the_warning(monkeypatch, poison_at):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    bars, open_bar = [], callbacks.open_bar

    def kept(*args, **kwargs):
        bars.append(open_bar(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr(callbacks, "open_bar", kept)
    with pytest.warns(UserWarning, match="diverged at epoch 2") as caught:
        history = train_tiny(1, callbacks=[poison_at(2)])
    assert len(caught) == 1 and len(history.rows) == 1 and len(bars) == 2
    assert all(bar.disable for bar in bars)  # both closed (tqdm disables a closed bar)
    assert bars[-1].n < STEPS  # the second epoch's bar stopped at its first batch
