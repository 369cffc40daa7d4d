"""cnnlab on a GPU: the main job, a resumed run, mixed precision, scoring. Skipped without one.

CI has no GPU; where a session is lent one, ``bench/device_check.sh`` runs this module there.
``CNNLAB_TEST_DEVICE=cpu`` runs the same tests on the CPU, which checks the tests themselves
on a machine without a GPU (each then trains on the CPU, as the CPU suites already do).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.data.dataset import ImageDataset, Normalizer
from cnnlab.data.mnist import mnist
from cnnlab.evaluate import per_sample
from cnnlab.export import load
from cnnlab.runs.folder import partial_of
from cnnlab.runs.reading import load_run_split
from cnnlab.synth import synth_bacteria
from cnnlab.train import Callback
from cnnlab.train.resume import resume_training
from cnnlab.train.run import RunConfig, run_training

DEVICE = os.environ.get("CNNLAB_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a GPU that PyTorch sees"
)


def cnnlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, timeout=600
    )


def resolved(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())["resolved"]


def test_the_main_job_trains_on_the_gpu_and_its_model_scores_the_same_on_the_cpu(tmp_path):
    out = tmp_path / "main"
    done = cnnlab("train", "--device", DEVICE, "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    # The goal is 99.0% (issue 16); a GPU's other order of additions may cost a tenth.
    assert metrics["test"]["accuracy"] >= 0.985, metrics["test"]["accuracy"]
    # Every section drawn: a figure that failed would leave a note in its place.
    report = (out / "report.html").read_text()
    assert len(report) > 10_000 and "could not be drawn" not in report
    where = resolved(out)
    assert where["device"] == DEVICE
    if DEVICE == "cuda":
        assert where["gpu"] == torch.cuda.get_device_name() and not where["native_kernels"]
    # The saved model, loaded on the CPU, gives the run's own test accuracy: the run scored
    # the model it saved, wherever it trained.
    model = load(out)
    assert next(model.parameters()).device.type == "cpu"
    _, test = mnist()
    scores = per_sample(model, test)
    accuracy = float((scores["predictions"] == scores["labels"]).mean())
    assert accuracy == pytest.approx(metrics["test"]["accuracy"], abs=1e-4)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.float32])
def test_input_statistics_of_images_on_the_gpu_are_the_cpus(dtype):
    # 8-bit, 16-bit (held as int32) and float images: integer ones go through a histogram.
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256 if dtype == torch.uint8 else 60_000, (64, 2, 24, 24),
                           generator=generator).to(dtype)  # fmt: skip

    def statistics(where: torch.Tensor) -> Normalizer:
        labels, paths = torch.zeros(64, dtype=torch.long), tuple(f"{i}.tif" for i in range(64))
        return Normalizer.fit(ImageDataset(where, labels, ("a",), paths))

    on_cpu, on_device = statistics(images), statistics(images.to(DEVICE))
    assert on_device.mean == pytest.approx(on_cpu.mean, rel=1e-12)
    assert on_device.std == pytest.approx(on_cpu.std, rel=1e-12)


@pytest.fixture(scope="module")
def bacteria(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "bacteria"
    synth_bacteria(root, per_class=30, seed=0, min_size=20, max_size=40)
    return root


class PowerCut(Exception):
    pass


class CutInEpoch2(Callback):
    def on_batch_end(self, logs):
        if logs["epoch"] == 2 and logs["batch"] == 1:
            raise PowerCut


def test_a_gpu_run_cut_mid_epoch_resumes_to_the_identical_run(bacteria, tmp_path):
    options = {
        "data": [str(bacteria)],
        "size": 24,
        "epochs": 3,
        "batch_size": 16,
        "device": DEVICE,
        # Augmented copies are made on the GPU from seeded CPU draws (README, Scaling up).
        "augment": ["flip:hv", "noise:0.1"],
        "quiet": True,
        "report": False,
        "cache": False,
    }
    whole = run_training(RunConfig.from_options({**options, "out": str(tmp_path / "whole")}))
    cut = tmp_path / "cut"
    with pytest.raises(PowerCut):
        run_training(RunConfig.from_options({**options, "out": str(cut)}), [CutInEpoch2()])
    assert partial_of(cut).exists() and not cut.exists()
    resume_training(cut, quiet=True)
    assert (cut / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert (cut / "metrics.json").read_text() == (whole / "metrics.json").read_text()

    def history(run: Path) -> list[list[str]]:  # every column but the seconds
        return [line.split(",")[:-1] for line in (run / "history.csv").read_text().splitlines()]

    assert history(cut) == history(whole)


def test_mixed_precision_trains_on_the_gpu(tmp_path):
    out = tmp_path / "amp"
    done = cnnlab(
        "train", "--device", DEVICE, "--amp", "--epochs", "1", "--no-report", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.98, metrics["test"]["accuracy"]
    assert json.loads((out / "config.json").read_text())["train"]["amp"] is True


def test_scores_on_the_gpu_match_the_cpus(tmp_path, train_quietly, bacteria):
    run = train_quietly(bacteria, tmp_path / "run", size=24, epochs=2, cache=False)
    test = load_run_split(run, quiet=True).test
    model = load(run)
    on_cpu = per_sample(model, test)
    on_device = per_sample(model, test, device=DEVICE)
    assert next(model.parameters()).device.type == "cpu"  # put back where it was
    # cuDNN convolves in TF32 by default (a 10-bit mantissa) on GPUs since Ampere: the same
    # probabilities to about 1e-3, the same classes but for near-ties.
    torch.testing.assert_close(
        torch.as_tensor(on_device["probabilities"]),
        torch.as_tensor(on_cpu["probabilities"]),
        atol=1e-2,
        rtol=0,
    )
    agree = (on_device["predictions"] == on_cpu["predictions"]).mean()
    assert agree >= 0.98 and len(on_cpu["labels"]) == len(test) > 0


@pytest.mark.skipif(DEVICE != "cuda" or torch.cuda.device_count() != 1, reason="one GPU only")
def test_two_processes_on_one_gpu_are_refused_in_one_line(tmp_path):
    done = cnnlab("train", "--device", "cuda", "--nproc", "2", "--out", str(tmp_path / "two"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "cnnlab: error: --nproc 2: this machine has 1 GPU(s); give at most 1"
    )
    assert not (tmp_path / "two").exists()
