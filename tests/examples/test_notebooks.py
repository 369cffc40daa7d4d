"""The course notebooks in ``examples/`` run from top to bottom and show what they promise.

Each notebook is executed in a fresh kernel of this interpreter with nbclient, in a temporary
folder, with ``CNNLAB_EXAMPLES_FAST=1`` (its first cell then picks small data and few epochs).
A notebook passes when no cell fails, when it displays at least the pictures and HTML tables its
entry in :data:`EXPECTED` says, and when every accuracy line it prints (``test accuracy:
97.12%``) reaches its floor. A notebook without an entry fails: a new notebook has to declare
what it shows. The committed files themselves must be clean: no outputs, no execution counts.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[notebook]' to test notebooks")
nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[notebook]' to test notebooks")
pytest.importorskip("ipykernel", reason="pip install -e '.[notebook]' to test notebooks")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))

# What each notebook must show in fast mode: at least `png` image/png outputs, at least `html`
# text/html outputs, and for each label in `floors`, every printed "<label>: NN.NN%" line at or
# above the floor (and at least one such line). Floors are for the fast settings, measured with
# a margin; the full settings reach the figures quoted in the notebooks.
EXPECTED: dict[str, dict] = {
    "01_microscopy_practical": {
        "png": 7,
        "html": 10,
        "floors": {
            "mlp test accuracy": 0.50,
            "mlp augmented test accuracy": 0.70,
            "lenet5 test accuracy": 0.70,
            "lenet5_bn test accuracy": 0.75,
        },
    },
    "02_pytorch_lenet": {
        "png": 5,
        "html": 5,
        "floors": {"test accuracy": 0.60, "exercise 4 test accuracy": 0.90},
    },
    "03_keras_mnist": {
        "png": 12,
        "html": 7,
        # The Adadelta runs (Keras' rate, 0.001) stay near chance in fast mode by design.
        "floors": {
            "MLP test accuracy": 0.50,
            "MLP on [0, 1] test accuracy": 0.75,
            "LeNet-5 Adam test accuracy": 0.70,
            "CNN Adam test accuracy": 0.60,
        },
    },
    "04_mxnet_lenet_blog": {
        "png": 7,
        "html": 6,
        "floors": {"test accuracy": 0.85, "reloaded test accuracy": 0.85},
    },
    "05_cnn_course": {
        "png": 7,
        "html": 3,
        "floors": {"train accuracy": 0.80, "test accuracy": 0.80},
    },
}

# A notebook may take this long per cell before the run counts as hung.
CELL_TIMEOUT_S = 300
ACCURACY_LINE = re.compile(r"^(?P<label>[^\n:]*accuracy): (?P<value>\d+(?:\.\d+)?)%[ \t]*$", re.M)


def _ids(paths: list[Path]) -> list[str]:
    return [path.stem for path in paths]


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``python3`` kernel spec that starts *this* interpreter, whatever Jupyter finds elsewhere.

    A user-wide or system kernel named python3 could point at another Python without cnnlab;
    ``JUPYTER_PATH`` comes first in Jupyter's search, so this spec wins.
    """
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "cnnlab tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    return root


def _outputs(notebook) -> list[dict]:
    return [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    ]


def _count(outputs: list[dict], mime: str) -> int:
    return sum(
        1
        for output in outputs
        if output.get("output_type") in ("display_data", "execute_result")
        and mime in output.get("data", {})
    )


def _stdout(outputs: list[dict]) -> str:
    return "".join(
        output.get("text", "")
        for output in outputs
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


def accuracy_lines(text: str) -> dict[str, list[float]]:
    """Every ``<label> accuracy: NN.NN%`` line, as percentages by label, in order."""
    found: dict[str, list[float]] = {}
    for match in ACCURACY_LINE.finditer(text):
        found.setdefault(match["label"].strip(), []).append(float(match["value"]))
    return found


def test_accuracy_lines_are_parsed_as_printed() -> None:
    text = "epoch 1\ntest accuracy: 97.12%\nmlp test accuracy: 40%\nnot accuracy: 5 %\n"
    assert accuracy_lines(text) == {"test accuracy": [97.12], "mlp test accuracy": [40.0]}


def test_every_expectation_has_its_notebook() -> None:
    stale = sorted(set(EXPECTED) - set(_ids(NOTEBOOKS)))
    assert not stale, f"EXPECTED names notebooks that examples/ does not hold: {stale}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs or execution counts; clear them"
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert code and "CNNLAB_EXAMPLES_FAST" in code[0], (
        f"{path.name}: the first code cell must choose its settings from CNNLAB_EXAMPLES_FAST"
    )
    titles = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    assert any("What cnnlab cannot do here" in title for title in titles), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_runs_top_to_bottom(
    path: Path, tmp_path: Path, kernel_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = EXPECTED.get(path.stem)
    assert expected is not None, (
        f"{path.name} has no entry in EXPECTED ({__file__}): say how many image/png and "
        "text/html outputs it shows and the floors of the accuracies it prints"
    )
    monkeypatch.setenv(
        "JUPYTER_PATH", os.pathsep.join([str(kernel_dir), os.environ.get("JUPYTER_PATH", "")])
    )
    monkeypatch.setenv("CNNLAB_EXAMPLES_FAST", "1")
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tmp_path / ".cache"))
    before = sorted(EXAMPLES.rglob("*"))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, when one fails
    seconds = time.perf_counter() - start
    print(f"{path.name}: {seconds:.1f} s")

    outputs = _outputs(notebook)
    assert not [output for output in outputs if output.get("output_type") == "error"]
    pngs, htmls = _count(outputs, "image/png"), _count(outputs, "text/html")
    assert pngs >= expected["png"], f"{path.name}: {pngs} image/png outputs, expected {expected}"
    assert htmls >= expected["html"], f"{path.name}: {htmls} text/html outputs, expected {expected}"
    stderr = "".join(
        output.get("text", "")
        for output in outputs
        if output.get("output_type") == "stream" and output.get("name") == "stderr"
    )
    # In a notebook progress is a widget, never a text bar as well (tqdm's bars hold "it/s").
    assert "it/s" not in stderr and "s/it" not in stderr, f"{path.name}: text progress bars"
    lines = accuracy_lines(_stdout(outputs))
    for label, floor in expected["floors"].items():
        values = lines.get(label)
        assert values, f"{path.name} printed no '{label}: NN.NN%' line; it printed {lines}"
        assert min(values) >= 100 * floor, f"{path.name}: {label} {values}% below {floor:.0%}"
    assert sorted(EXAMPLES.rglob("*")) == before, f"{path.name} wrote into examples/"
