"""Every kind of bad input the command line meets, and the one answer it must give.

The project's rule: bad input gets one line on stderr (``cnnlab: error: ...``) that names the
file or the flag at fault, exit code 2, no traceback, nothing on stdout, and nothing on disk
changed. Each case runs ``cnnlab`` (in-process through :func:`cnnlab.cli.main`, a few as a real
subprocess) against one temporary tree built once for the module: a small synthetic dataset, two
tiny finished runs, damaged images, models and config files. The whole tree is fingerprinted
(relative paths, sizes, SHA-256, modes, modification times) before and after every case, so a
bad ``cnnlab train --out RUN --overwrite ...`` that touches the old run fails its case; the tree
is then restored so that one broken case cannot spoil the next. ``CNNLAB_CACHE_DIR`` points to a
folder beside the tree: a cache entry for good images is not a change to the user's files.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from cnnlab.cli import main
from cnnlab.synth import CLASSES, synth_bacteria, synth_field

CNNLAB = Path(sys.executable).with_name("cnnlab")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")

# The options every `cnnlab train` case shares: tiny, fast, and aimed at the finished run, so
# that a bad option which is checked too late would empty or replace that run.
TRAIN = [
    "train",
    "--size",
    "16",
    "--epochs",
    "1",
    "--no-report",
    "--no-cache",
    "--quiet",
    "--out",
    "{run}",
    "--overwrite",
]
TRAIN_DATA = [*TRAIN, "--data", "{data}"]
TRAIN_DATA_NO_OVERWRITE = [part for part in TRAIN_DATA if part != "--overwrite"]
# A whole field, its objects and a crops folder to create: the start of every field case.
CROPS = ["crops", "{field}/field.tif", "--out", "{cwd}/crops"]
CROPS_ROIS = [*CROPS, "--rois", "{field}/RoiSet.zip"]
PREDICT_FIELD = ["predict", "{run}", "--field", "{field}/field.tif", "--rois", "{field}/RoiSet.zip"]


# ----------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Case:
    """``argv`` (with ``{placeholders}`` for the tree's paths) and regular expressions that the
    one error line must all match: the flag or the file at fault."""

    id: str
    argv: list[str]
    names: tuple[str, ...]
    subprocess: bool = False


def case(id, argv, *names, subprocess=False, marks=()) -> pytest.param:
    return pytest.param(Case(id, argv, names, subprocess), id=id, marks=marks)


def _file(name: str) -> str:
    """A regex for a file or folder name as a whole part of a printed path."""
    return rf"(^|[\s/'\"]){re.escape(name)}($|[\s/:;,.'\")])"


def _flag(flag: str, *values: str) -> str:
    """A regex for a flag, written as typed or as its Python name (``per_class``), or for one
    of the values given to it."""
    word = re.escape(flag.removeprefix("--")).replace(r"\-", "[-_]")
    return "|".join([rf"(--)?\b{word}\b", *(re.escape(value) for value in values)])


# Image files bad in one way each (written by _build), by the name of that way.
IMAGE_KINDS = {
    "empty": "empty.tif",
    "truncated": "truncated.tif",
    "text": "text.tif",
    "wrong_extension": "notes.csv",
    "stack": "stack.tif",
    "huge_png": "huge.png",
    "huge_png16": "huge16.png",
    "huge_tif": "huge.tif",
}

CASES = [
    # -------------------------------------------------------------- image files: predict
    *(
        case(f"predict-image-{kind}", ["predict", "{run}", f"{{images}}/{name}"], _file(name))
        for kind, name in IMAGE_KINDS.items()
    ),
    case("predict-image-missing", ["predict", "{run}", "{images}/nope.tif"], _file("nope.tif")),
    case(
        "predict-pattern-matches-nothing",
        ["predict", "{run}", "{images}", "--pattern", "*.xyz"],
        _file("images"),
        r"no files matching '\*\.xyz'",
    ),
    case("predict-image-nan-float", ["predict", "{run32}", "{images}/nan.tif"], _file("nan.tif")),
    case("predict-image-inf-float", ["predict", "{run32}", "{images}/inf.tif"], _file("inf.tif")),
    case(
        "predict-image-extreme-float",
        ["predict", "{run32}", "{images}/extreme.tif"],
        _file("extreme.tif"),
    ),
    case(
        "predict-image-other-bit-depth",
        ["predict", "{run}", "{images}/eight.png"],
        _file("eight.png"),
    ),
    case(
        "predict-folder-with-a-bad-file",
        ["predict", "{run}", "{folders}/bad_text/1cell"],
        _file("text.tif"),
    ),
    case(
        "predict-folder-without-images",
        ["predict", "{run}", "{folders}/emptycls/zz_empty"],
        _file("zz_empty"),
    ),
    # -------------------------------------------------------------- image files: train
    *(
        case(
            f"train-image-{kind}",
            [
                *TRAIN,
                "--data",
                f"{{folders}}/bad_{kind}",
                # A folder's notes.csv is not an image file unless the pattern takes every file.
                *(["--pattern", "*"] if kind == "wrong_extension" else []),
            ],
            _file(name),
        )
        for kind, name in IMAGE_KINDS.items()
    ),
    case("train-image-nan-float", [*TRAIN, "--data", "{folders}/float_nan"], _file("nan.tif")),
    case("train-image-inf-float", [*TRAIN, "--data", "{folders}/float_inf"], _file("inf.tif")),
    case(
        "train-stack-plane-out-of-range",
        [*TRAIN, "--data", "{folders}/bad_stack", "--plane", "5"],
        _flag("--plane"),
    ),
    case("data-summary-text-image", ["data", "summary", "{folders}/bad_text"], _file("text.tif")),
    case("data-summary-nan-float", ["data", "summary", "{folders}/float_nan"], _file("nan.tif")),
    case(
        "evaluate-data-with-empty-image",
        ["evaluate", "{run}", "--data", "{folders}/bad_empty"],
        _file("empty.tif"),
    ),
    # -------------------------------------------------------------- folders
    case("train-data-missing", [*TRAIN, "--data", "{w}/nope"], _file("nope")),
    case("train-data-is-a-file", [*TRAIN, "--data", "{w}/file.txt"], _file("file.txt")),
    case("train-data-no-class-folders", [*TRAIN, "--data", "{folders}/flat"], _file("flat")),
    case("train-data-one-class", [*TRAIN, "--data", "{folders}/onecls"], _file("onecls")),
    case("train-data-empty-class", [*TRAIN, "--data", "{folders}/emptycls"], _file("zz_empty")),
    case("train-data-mixed-channels", [*TRAIN, "--data", "{folders}/mixed"], _flag("--channels")),
    case(
        "train-pattern-matches-nothing",
        [*TRAIN_DATA, "--pattern", "*.xyz"],
        _flag("--pattern", "*.xyz"),
    ),
    case("train-data-mnist-and-folder", [*TRAIN_DATA, "--data", "mnist"], "--data"),
    case("data-summary-missing", ["data", "summary", "{w}/nope"], _file("nope")),
    case("data-summary-file", ["data", "summary", "{w}/file.txt"], _file("file.txt")),
    case("data-summary-no-class-folders", ["data", "summary", "{folders}/flat"], _file("flat")),
    case(
        "data-summary-pattern-matches-nothing",
        ["data", "summary", "{data}", "--pattern", "*.xyz"],
        _flag("--pattern", "*.xyz"),
    ),
    case("evaluate-data-missing", ["evaluate", "{run}", "--data", "{w}/nope"], _file("nope")),
    case(
        "evaluate-data-other-classes",
        ["evaluate", "{run}", "--data", "{folders}/other_classes"],
        _file("other_classes"),
    ),
    # -------------------------------------------------------------- train options
    case(
        "train-augment-unknown",
        [*TRAIN_DATA, "--augment", "bogus:1"],
        _flag("--augment", "bogus:1"),
    ),
    case(
        "train-augment-bad-number",
        [*TRAIN_DATA, "--augment", "rotate:abc"],
        _flag("--augment", "rotate:abc"),
    ),
    case(
        "train-augment-empty-chain",
        [*TRAIN_DATA, "--augment", "flip+"],
        _flag("--augment", "flip+"),
    ),
    case("train-lr-inf", [*TRAIN_DATA, "--lr", "inf"], "--lr"),
    case("train-lr-nan", [*TRAIN_DATA, "--lr", "nan"], "--lr"),
    case("train-lr-negative", [*TRAIN_DATA, "--lr", "-1"], "--lr"),
    case("train-lr-zero", [*TRAIN_DATA, "--lr", "0"], "--lr"),
    case("train-epochs-zero", [*TRAIN_DATA, "--epochs", "0"], "--epochs"),
    case("train-batch-size-negative", [*TRAIN_DATA, "--batch-size", "-1"], "--batch-size"),
    case("train-device-cuda", [*TRAIN_DATA, "--device", "cuda"], "--device", marks=NO_CUDA),
    case("train-device-bogus", [*TRAIN_DATA, "--device", "bogus"], "--device"),
    case("train-split-does-not-sum", [*TRAIN_DATA, "--split", "50,10"], "--split"),
    case("train-size-zero", [*TRAIN_DATA, "--size", "0"], "--size"),
    case("train-size-letters", [*TRAIN_DATA, "--size", "abc"], "--size"),
    case("train-model-unknown", [*TRAIN_DATA, "--model", "unknown"], "--model|unknown"),
    case("train-optimizer-bogus", [*TRAIN_DATA, "--optimizer", "bogus"], "--optimizer"),
    case("train-schedule-bogus", [*TRAIN_DATA, "--schedule", "bogus"], "--schedule"),
    case("train-monitor-bogus", [*TRAIN_DATA, "--monitor", "bogus"], "--monitor"),
    case("train-momentum-above-one", [*TRAIN_DATA, "--momentum", "1.5"], "--momentum"),
    case("train-wd-negative", [*TRAIN_DATA, "--wd", "-1"], "--wd"),
    case("train-label-smoothing-one", [*TRAIN_DATA, "--label-smoothing", "1"], "--label-smoothing"),
    case("train-gamma-zero", [*TRAIN_DATA, "--gamma", "0"], "--gamma"),
    case("train-threads-zero", [*TRAIN_DATA, "--threads", "0"], "--threads"),
    case("train-patience-zero", [*TRAIN_DATA, "--patience", "0"], "--patience"),
    case("train-seed-negative", [*TRAIN_DATA, "--seed", "-1"], "--seed"),
    case("train-init-bogus", [*TRAIN_DATA, "--init", "bogus"], "--init"),
    case("train-init-sigma-negative", [*TRAIN_DATA, "--init-sigma", "-1"], "--init-sigma"),
    case("train-step-size-zero", [*TRAIN_DATA, "--step-size", "0"], "--step-size"),
    case("train-plane-negative", [*TRAIN_DATA, "--plane", "-1"], "--plane"),
    case("train-resume-with-other-flags", ["train", "--resume", "{run}", "--lr", "0.1"], "--lr"),
    case("train-resume-missing-folder", ["train", "--resume", "{w}/nope"], _file("nope")),
    case("train-resume-not-a-run", ["train", "--resume", "{data}"], _file("data")),
    case("train-out-exists-without-overwrite", TRAIN_DATA_NO_OVERWRITE, "--out"),
    case("train-overwrite-not-a-run", [*TRAIN_DATA, "--out", "{w}/notrun"], "--out"),
    case("train-out-under-a-file", [*TRAIN_DATA, "--out", "{w}/file.txt/sub"], "--out"),
    case("train-out-is-a-file", [*TRAIN_DATA, "--out", "{w}/file.txt"], "--out"),
    # -------------------------------------------------------------- config files
    case(
        "config-missing", [*TRAIN_DATA, "--config", "{configs}/missing.toml"], _file("missing.toml")
    ),
    case("config-bad-toml", [*TRAIN_DATA, "--config", "{configs}/bad.toml"], _file("bad.toml")),
    case(
        "config-unknown-key",
        [*TRAIN_DATA, "--config", "{configs}/unknown.toml"],
        _file("unknown.toml"),
        "colour",
    ),
    case(
        "config-wrong-type",
        [*TRAIN_DATA, "--config", "{configs}/wrong_type.toml"],
        _file("wrong_type.toml"),
        "epochs",
    ),
    case(
        "config-list-for-a-number",
        [*TRAIN_DATA, "--config", "{configs}/list_lr.toml"],
        _file("list_lr.toml"),
        "lr",
    ),
    case(
        "config-bad-value",
        [*TRAIN_DATA, "--config", "{configs}/negative_lr.toml"],
        _file("negative_lr.toml"),
        "lr",
    ),
    case("config-is-a-folder", [*TRAIN_DATA, "--config", "{configs}"], _file("configs")),
    case(
        "config-not-utf8", [*TRAIN_DATA, "--config", "{configs}/latin1.toml"], _file("latin1.toml")
    ),
    # -------------------------------------------------------------- model files: predict
    case("predict-model-missing", ["predict", "{w}/nope", "{img}"], _file("nope")),
    case("predict-model-is-data", ["predict", "{data}", "{img}"], "model.json"),
    *(
        case(
            f"predict-model-{name}",
            ["predict", f"{{models}}/{name}", "{img}"],
            rf"{name}/{culprit}",
        )
        for name, culprit in {
            "no_json": r"model\.json",
            "no_weights": r"model\.safetensors",
            "damaged_json": r"model\.json",
            "json_not_object": r"model\.json",
            "no_class_names": r"model\.json",
            "class_names_not_strings": r"model\.json",
            "one_class_name": r"model\.json",
            "repeated_class_names": r"model\.json",
            "zero_std": r"model\.json",
            "negative_std": r"model\.json",
            "nan_mean": r"model\.json",
            "inf_std": r"model\.json",
            "std_differs_from_weights": r"model\.safetensors",
            "nan_weights": r"model\.safetensors",
            "zero_std_weights": r"model\.(safetensors|json)",
            "truncated_weights": r"model\.safetensors",
            "weights_of_another_network": r"model\.safetensors",
            "input_size_string": r"model\.json",
            "in_chans_string": r"model\.json",
            "num_classes_float": r"model\.json",
            "kwargs_list": r"model\.json",
            "kwargs_wrong_type": r"model\.json",
            "no_architecture": r"model\.json",
            "unknown_architecture": r"model\.json",
            "bit_depth_string": r"model\.json",
            "format_version_string": r"model\.json",
            "newer_format": r"model\.json",
        }.items()
    ),
    # -------------------------------------------------------------- model files: other commands
    case("evaluate-model-missing", ["evaluate", "{w}/nope"], _file("nope")),
    case(
        "evaluate-model-no-class-names",
        ["evaluate", "{models}/no_class_names", "--data", "{data}"],
        r"no_class_names/model\.json",
    ),
    case(
        "evaluate-model-one-class-name",
        ["evaluate", "{models}/one_class_name", "--data", "{data}"],
        r"one_class_name/model\.json",
    ),
    case(
        "evaluate-model-nan-weights",
        ["evaluate", "{models}/nan_weights", "--data", "{data}"],
        r"nan_weights/model\.safetensors",
    ),
    case("evaluate-model-without-run-needs-data", ["evaluate", "{models}/copy"], "--data"),
    case("inspect-model-missing", ["inspect", "{w}/nope", "{img}"], _file("nope")),
    case(
        "inspect-model-zero-std",
        ["inspect", "{models}/zero_std", "{img}", "--out", "{cwd}/look"],
        r"zero_std/model\.json",
    ),
    case(
        "inspect-model-truncated-weights",
        ["inspect", "{models}/truncated_weights", "{img}", "--out", "{cwd}/look"],
        r"truncated_weights/model\.safetensors",
    ),
    case(
        "inspect-image-empty",
        ["inspect", "{run}", "{images}/empty.tif", "--out", "{cwd}/look"],
        _file("empty.tif"),
    ),
    case("summary-model-missing", ["summary", "{w}/nope"], _file("nope")),
    case(
        "summary-model-damaged-json",
        ["summary", "{models}/damaged_json"],
        r"damaged_json/model\.json",
    ),
    case("summary-model-no-class-names", ["summary", "{models}/no_class_names"], r"model\.json"),
    case(
        "summary-model-input-size-string", ["summary", "{models}/input_size_string"], r"model\.json"
    ),
    case("summary-size-letters", ["summary", "lenet5", "--size", "abc"], "--size"),
    case("summary-size-zero", ["summary", "lenet5", "--size", "0"], "--size"),
    case("summary-size-too-small", ["summary", "lenet5", "--size", "3"], "--size"),
    case("summary-classes-one", ["summary", "lenet5", "--classes", "1"], _flag("--classes")),
    case("summary-channels-zero", ["summary", "lenet5", "--channels", "0"], _flag("--channels")),
    case("report-run-missing", ["report", "{w}/nope"], _file("nope")),
    case("plots-damaged-model", ["plots", "{runs}/damaged_model"], r"damaged_model/model\.json"),
    case("plots-run-missing", ["plots", "{w}/nope"], _file("nope")),
    case("report-image-out-of-range", ["report", "{run}", "--image", "100000"], "--image"),
    case("report-image-negative", ["report", "{run}", "--image", "-1"], "--image"),
    # -------------------------------------------------------------- output paths
    case(
        "predict-out-missing-folder",
        ["predict", "{run}", "{img}", "--out", "{w}/nodir/p.csv"],
        "--out",
    ),
    case(
        "predict-out-exists",
        ["predict", "{run}", "{img}", "--out", "{w}/existing.csv"],
        "--out",
    ),
    case(
        "predict-out-under-a-file",
        ["predict", "{run}", "{img}", "--out", "{w}/file.txt/p.csv"],
        "--out",
    ),
    case("predict-out-is-a-folder", ["predict", "{run}", "{img}", "--out", "{cwd}"], "--out"),
    case(
        "report-out-under-a-file",
        ["report", "{run}", "--out", "{w}/file.txt/r.html"],
        _flag("--out", "file.txt"),
    ),
    case(
        "report-out-is-a-folder",
        ["report", "{run}", "--out", "{cwd}"],
        _flag("--out", "world/cwd"),
    ),
    case(
        "report-out-exists",
        ["report", "{run}", "--out", "{w}/existing.csv"],
        "--out",
        "exists",
        "--overwrite",
    ),
    case(
        "kernels-out-exists",
        ["kernels", "{png}", "--out", "{w}/existing.csv"],
        "--out",
        "exists",
        "--overwrite",
    ),
    case(
        "samples-out-exists",
        ["data", "samples", "{data}", "--out", "{w}/existing.csv"],
        "--out",
        "exists",
        "--overwrite",
    ),
    case(
        "plots-out-is-a-file",
        ["plots", "{run}", "--out", "{w}/file.txt"],
        _flag("--out", "file.txt"),
    ),
    case(
        "plots-out-under-a-file",
        ["plots", "{run}", "--out", "{w}/file.txt/sub"],
        _flag("--out", "file.txt"),
    ),
    case(
        "inspect-out-is-a-file",
        ["inspect", "{run}", "{img}", "--out", "{w}/file.txt"],
        _flag("--out", "file.txt"),
    ),
    case(
        "kernels-out-under-a-file",
        ["kernels", "{png}", "--out", "{w}/file.txt/k.png"],
        _flag("--out", "file.txt"),
    ),
    case(
        "samples-out-under-a-file",
        ["data", "samples", "{data}", "--out", "{w}/file.txt/s.png"],
        _flag("--out", "file.txt"),
    ),
    case(
        "synth-out-under-a-file",
        ["synth", "bacteria", "--out", "{w}/file.txt/sub"],
        _flag("--out", "file.txt"),
    ),
    case("synth-out-not-empty", ["synth", "bacteria", "--out", "{w}/notrun"], "--out|notrun"),
    # -------------------------------------------------------------- data summary / samples / synth
    case(
        "samples-per-class-zero",
        ["data", "samples", "{data}", "--per-class", "0"],
        _flag("--per-class"),
    ),
    case(
        "samples-per-class-negative",
        ["data", "samples", "{data}", "--per-class", "-3"],
        _flag("--per-class"),
    ),
    case("samples-seed-negative", ["data", "samples", "{data}", "--seed", "-1"], _flag("--seed")),
    case("samples-data-missing", ["data", "samples", "{w}/nope"], _file("nope")),
    case(
        "synth-per-class-zero",
        ["synth", "bacteria", "--out", "{cwd}/new", "--per-class", "0"],
        _flag("--per-class"),
    ),
    case(
        "synth-min-size-above-max",
        ["synth", "bacteria", "--out", "{cwd}/new", "--min-size", "50", "--max-size", "20"],
        "--min-size",
    ),
    # -------------------------------------------------------------- whole fields: crops
    case("crops-no-objects", CROPS, "--rois", "--labels"),
    case(
        "crops-rois-and-labels",
        [*CROPS_ROIS, "--labels", "{field}/field_labels.tif"],
        "--rois",
        "--labels",
    ),
    case(
        "crops-field-missing",
        ["crops", "{w}/nope.tif", "--rois", "{field}/RoiSet.zip", "--out", "{cwd}/crops"],
        _file("nope.tif"),
    ),
    case(
        "crops-field-is-a-folder",
        ["crops", "{field}", "--rois", "{field}/RoiSet.zip", "--out", "{cwd}/crops"],
        _file("field"),
    ),
    case(
        "crops-rois-damaged",
        [*CROPS, "--rois", "{images}/damaged_rois.zip"],
        _file("damaged_rois.zip"),
    ),
    case("crops-rois-missing", [*CROPS, "--rois", "{w}/nope.zip"], _file("nope.zip")),
    case(
        "crops-labels-float",
        [*CROPS, "--labels", "{images}/float_labels.tif"],
        _file("float_labels.tif"),
    ),
    case(
        "crops-labels-of-another-size",
        [*CROPS, "--labels", "{images}/whole_labels.tif"],
        _file("whole_labels.tif"),
    ),
    case("crops-margin-negative", [*CROPS_ROIS, "--margin", "-1"], _flag("--margin")),
    case("crops-size-zero", [*CROPS_ROIS, "--size", "0"], _flag("--size")),
    case("crops-size-letters", [*CROPS_ROIS, "--size", "abc"], _flag("--size")),
    case("crops-border-bogus", [*CROPS_ROIS, "--border", "bogus"], _flag("--border")),
    case(
        "crops-out-not-empty",
        [*CROPS_ROIS[:3], "{w}/notrun", *CROPS_ROIS[4:]],
        _flag("--out", "notrun"),
    ),
    case(
        "crops-out-crops-without-overwrite",
        [*CROPS_ROIS[:3], "{w}/crops", *CROPS_ROIS[4:]],
        _flag("--out"),
    ),
    case(
        "crops-overwrite-not-a-crops-folder",
        [*CROPS_ROIS[:3], "{w}/notrun", *CROPS_ROIS[4:], "--overwrite"],
        _flag("--out", "notrun"),
    ),
    case(
        "crops-out-under-a-file",
        [*CROPS_ROIS[:3], "{w}/file.txt/sub", *CROPS_ROIS[4:]],
        _flag("--out", "file.txt"),
    ),
    case("crops-channel-one-channel", [*CROPS_ROIS, "--channel", "1"], _flag("--channel")),
    case("crops-plane-one-plane", [*CROPS_ROIS, "--plane", "0"], _flag("--plane")),
    case(
        "crops-plane-out-of-range",
        [
            "crops",
            "{images}/field_stack.tif",
            "--rois",
            "{field}/RoiSet.zip",
            "--plane",
            "7",
            "--out",
            "{cwd}/crops",
        ],
        _flag("--plane"),
    ),
    case(
        "crops-stack-without-plane",
        ["crops", "{images}/field_stack.tif", "--rois", "{field}/RoiSet.zip", "--out", "{cwd}/c"],
        _flag("--plane"),
    ),
    # -------------------------------------------------------------- whole fields: predict
    # The image before the options: argparse takes `predict RUN --field F IMG` as an unknown
    # argument, not as a path (a known argparse limit with optional positionals).
    case(
        "predict-field-and-images",
        ["predict", "{run}", "{img}", *PREDICT_FIELD[2:]],
        _flag("--field"),
    ),
    case(
        "predict-overlay-without-field",
        ["predict", "{run}", "{img}", "--overlay", "{cwd}/o.png"],
        _flag("--overlay"),
    ),
    case(
        "predict-margin-without-field",
        ["predict", "{run}", "{img}", "--margin", "3"],
        _flag("--margin"),
    ),
    case(
        "predict-rois-without-field",
        ["predict", "{run}", "{img}", "--rois", "{field}/RoiSet.zip"],
        _flag("--rois"),
    ),
    case(
        "predict-field-missing",
        ["predict", "{run}", "--field", "{w}/nope.tif", "--rois", "{field}/RoiSet.zip"],
        _file("nope.tif"),
    ),
    case(
        "predict-field-no-objects",
        ["predict", "{run}", "--field", "{field}/field.tif"],
        "--rois",
        "--labels",
    ),
    case("predict-field-skip-bad", [*PREDICT_FIELD, "--skip-bad"], _flag("--skip-bad")),
    case(
        "predict-field-rois-damaged",
        ["predict", "{run}", "--field", "{field}/field.tif", "--rois", "{images}/damaged_rois.zip"],
        _file("damaged_rois.zip"),
    ),
    case("predict-field-border-bogus", [*PREDICT_FIELD, "--border", "bogus"], _flag("--border")),
    case(
        "predict-field-out-exists",
        [*PREDICT_FIELD, "--out", "{w}/existing.csv"],
        _flag("--out"),
    ),
    case(
        "predict-field-default-overlay-exists",
        [*PREDICT_FIELD, "--out", "{w}/taken.csv"],
        _flag("--overlay", "taken-overlay.png"),
    ),
    case(
        "predict-field-overlay-exists",
        [*PREDICT_FIELD, "--overlay", "{w}/taken-overlay.png"],
        _flag("--overlay"),
    ),
    case(
        "predict-field-overlay-not-png",
        [*PREDICT_FIELD, "--overlay", "{cwd}/o.jpg"],
        _flag("--overlay"),
    ),
    case("predict-field-channel-one-channel", [*PREDICT_FIELD, "--channel", "0"], "--channel"),
    case(
        "predict-field-everything-skipped",
        [*PREDICT_FIELD, "--size", "500", "--out", "{cwd}/p.csv"],
        _file("RoiSet.zip"),
        "--border",
    ),
    # -------------------------------------------------------------- whole fields: synth, summary
    case(
        "synth-field-size-too-small",
        ["synth", "field", "--out", "{cwd}/new", "--size", "10"],
        _flag("--size"),
    ),
    case(
        "synth-field-size-letters",
        ["synth", "field", "--out", "{cwd}/new", "--size", "big"],
        _flag("--size"),
    ),
    case(
        "synth-field-per-class-negative",
        ["synth", "field", "--out", "{cwd}/new", "--per-class", "-1"],
        _flag("--per-class"),
    ),
    case(
        "synth-field-out-not-empty",
        ["synth", "field", "--out", "{w}/notrun", "--size", "64"],
        _flag("--out", "notrun"),
    ),
    case(
        "synth-bacteria-style-bogus",
        ["synth", "bacteria", "--out", "{cwd}/new", "--style", "bogus"],
        _flag("--style", "bogus"),
    ),
    case(
        "data-summary-field-and-folder",
        ["data", "summary", "{field}/field.tif", "{data}"],
        _file("field.tif"),
    ),
    case(
        "data-summary-folder-and-field",
        ["data", "summary", "{data}", "{field}/field.tif"],
        _file("field.tif"),
    ),
    case(
        "data-summary-field-with-pattern",
        ["data", "summary", "{field}/field.tif", "--pattern", "*.tif"],
        _flag("--pattern"),
    ),
    # -------------------------------------------------------------- kernels
    case(
        "kernels-matrix-ragged",
        ["kernels", "{png}", "--matrix", "1 0 -1; 0 0"],
        _flag("--matrix", "'1 0 -1; 0 0'"),
    ),
    case(
        "kernels-matrix-letters",
        ["kernels", "{png}", "--matrix", "a b; c d"],
        _flag("--matrix", "'a b; c d'"),
    ),
    case("kernels-matrix-empty", ["kernels", "{png}", "--matrix", ""], _flag("--matrix", "''")),
    case(
        "kernels-matrix-nan",
        ["kernels", "{png}", "--matrix", "nan 0; 0 1"],
        _flag("--matrix", "'nan 0; 0 1'"),
    ),
    case("kernels-padding-bogus", ["kernels", "{png}", "--padding", "bogus"], "--padding"),
    case("kernels-padding-negative", ["kernels", "{png}", "--padding", "-1"], "--padding"),
    case("kernels-pool-zero", ["kernels", "{png}", "--pool", "max:0"], _flag("--pool")),
    case("kernels-pool-unknown", ["kernels", "{png}", "--pool", "min:2"], _flag("--pool")),
    case("kernels-pool-letters", ["kernels", "{png}", "--pool", "max:abc"], _flag("--pool")),
    case("kernels-stride-zero", ["kernels", "{png}", "--stride", "0"], _flag("--stride")),
    case("kernels-stride-negative", ["kernels", "{png}", "--stride", "-2"], _flag("--stride")),
    case("kernels-kernel-unknown", ["kernels", "{png}", "--kernel", "bogus"], "--kernel|bogus"),
    case("kernels-image-missing", ["kernels", "{w}/nope.png"], _file("nope.png")),
    case("kernels-image-empty", ["kernels", "{images}/empty.tif"], _file("empty.tif")),
    # -------------------------------------------------------------- a few as a real process
    case("process-train-lr-inf", [*TRAIN_DATA, "--lr", "inf"], "--lr", subprocess=True),
    case(
        "process-predict-model-no-class-names",
        ["predict", "{models}/no_class_names", "{img}"],
        r"no_class_names/model\.json",
        subprocess=True,
    ),
    case(
        "process-train-image-text",
        [*TRAIN, "--data", "{folders}/bad_text"],
        _file("text.tif"),
        subprocess=True,
    ),
    case(
        "process-crops-border-bogus",
        [*CROPS_ROIS, "--border", "bogus"],
        _flag("--border"),
        subprocess=True,
    ),
    case(
        "process-crops-rois-and-labels",
        [*CROPS_ROIS, "--labels", "{field}/field_labels.tif"],
        "--rois",
        "--labels",
        subprocess=True,
    ),
    case(
        "process-kernels-padding-bogus",
        ["kernels", "{png}", "--padding", "bogus"],
        "--padding",
        subprocess=True,
    ),
]


# ----------------------------------------------------------------------------- the tree
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _huge_png(depth: int, colour: int) -> bytes:
    """A PNG that declares 100,000 x 100,000 pixels and holds a few bytes of them."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _huge_tiff() -> bytes:
    """A little-endian TIFF that declares 60,000 x 60,000 8-bit pixels and holds 16 bytes."""
    entries = [
        (256, 4, 1, 60_000),  # ImageWidth, LONG
        (257, 4, 1, 60_000),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample, SHORT
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: black is zero
        (273, 4, 1, 8),  # StripOffsets: right after the header
        (278, 4, 1, 60_000),  # RowsPerStrip
        (279, 4, 1, 60_000 * 60_000),  # StripByteCounts
    ]
    ifd_offset = 8 + 16
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_offset) + bytes(16) + ifd


def _copy_classes(source: Path, target: Path, classes: list[str], per_class: int = 10) -> None:
    for name in classes:
        (target / name).mkdir(parents=True)
        for file in sorted((source / name).iterdir())[:per_class]:
            shutil.copy2(file, target / name / file.name)


def _float_folder(source: Path, target: Path) -> None:
    """Two classes of 32-bit float TIFFs made from the 16-bit crops."""
    for name in ("1cell", "2cell"):
        (target / name).mkdir(parents=True)
        for file in sorted((source / name).iterdir())[:10]:
            pixels = tifffile.imread(file).astype(np.float32) / 65535
            tifffile.imwrite(target / name / file.name, pixels)


def _cli(argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as e:
        code = main([str(a) for a in argv])
    assert code == 0, e.getvalue()


def _models(run: Path, models: Path) -> None:
    """Copies of the run's model, each damaged in one way."""
    meta = json.loads((run / "model.json").read_text())
    weights = load_file(run / "model.safetensors")

    def write(name: str, meta=meta, weights=weights, json_text=None, weight_bytes=None) -> None:
        folder = models / name
        folder.mkdir(parents=True)
        if json_text is not False:
            text = json_text if json_text is not None else json.dumps(meta, indent=2)
            (folder / "model.json").write_text(text)
        if weight_bytes is not None:
            (folder / "model.safetensors").write_bytes(weight_bytes)
        elif weights is not None:
            save_file(weights, folder / "model.safetensors", metadata={"format": "cnnlab-model"})

    def edited(**changes) -> dict:
        copy = json.loads(json.dumps(meta))
        for path, value in changes.items():
            *parents, last = path.split("__")
            target = copy
            for parent in parents:
                target = target[parent]
            if value is KeyError:
                del target[last]
            else:
                target[last] = value
        return copy

    def with_tensor(name: str, value: float) -> dict:
        changed = dict(weights)
        changed[name] = torch.full_like(weights[name], value)
        return changed

    write("copy")
    write("no_json", json_text=False)
    write("no_weights", weights=None)
    write("damaged_json", json_text='{"format": "cnnlab-model", "architecture": ')
    write("json_not_object", json_text="[1, 2, 3]")
    write("no_class_names", edited(class_names=KeyError))
    write("class_names_not_strings", edited(class_names=[1, 2, 3, 4]))
    write("one_class_name", edited(class_names=["1cell"]))
    write("repeated_class_names", edited(class_names=["a", "a", "b", "c"]))
    write("zero_std", edited(normalization__std=[0.0]))
    write("negative_std", edited(normalization__std=[-5.0]))
    write("nan_mean", edited(normalization__mean=[float("nan")]))
    write("inf_std", edited(normalization__std=[float("inf")]))
    write("std_differs_from_weights", edited(normalization__std=[1.0]))
    first_conv = next(k for k in weights if k.endswith("weight") and weights[k].ndim == 4)
    write("nan_weights", weights=with_tensor(first_conv, float("nan")))
    write("zero_std_weights", weights=with_tensor("standardize.std", 0.0))
    blob = (run / "model.safetensors").read_bytes()
    write("truncated_weights", weight_bytes=blob[: len(blob) // 2])
    write("weights_of_another_network", edited(architecture__name="mlp", architecture__kwargs={}))
    write("input_size_string", edited(architecture__input_size="16x16"))
    write("in_chans_string", edited(architecture__in_chans="1"))
    write("num_classes_float", edited(architecture__num_classes=4.5))
    write("kwargs_list", edited(architecture__kwargs=["auto"]))
    write("kwargs_wrong_type", edited(architecture__kwargs={"padding": [1, 2, 3]}))
    write("no_architecture", edited(architecture=KeyError))
    write("unknown_architecture", edited(architecture__name="resnet9000"))
    write("bit_depth_string", edited(bit_depth="16"))
    write("format_version_string", edited(format_version="1"))
    write("newer_format", edited(format_version=99))


def _build(world: Path) -> dict[str, str]:
    """Writes the tree; returns the ``{placeholders}`` of the cases."""
    paths = {
        name: world / name
        for name in ("data", "images", "folders", "configs", "models", "runs", "cwd")
    }
    data, images, folders = paths["data"], paths["images"], paths["folders"]
    for folder in (images, folders, paths["configs"], paths["runs"], paths["cwd"]):
        folder.mkdir()
    synth_bacteria(data, per_class=10, seed=0, min_size=16, max_size=24)
    tiny = ["--size", "16", "--epochs", "1", "--no-report", "--no-cache", "--quiet"]
    _cli(["train", "--data", data, *tiny, "--out", world / "run"])
    _float_folder(data, folders / "float_ok")
    _cli(["train", "--data", folders / "float_ok", *tiny, "--out", world / "run32"])

    # Image files, each bad in one way.
    crop = np.asarray(tifffile.imread(sorted((data / "1cell").iterdir())[0]), np.uint16)
    (images / "empty.tif").write_bytes(b"")
    tifffile.imwrite(images / "whole.tif", np.tile(crop, (3, 3)))
    whole = (images / "whole.tif").read_bytes()
    (images / "whole.tif").unlink()
    (images / "truncated.tif").write_bytes(whole[: len(whole) // 2])
    (images / "text.tif").write_text("this is a text file, not an image\n" * 4)
    (images / "notes.csv").write_text("path,class\ncrop 1.tif,1cell\n")
    # Five planes: three would be written (and read back) as one planar RGB image.
    tifffile.imwrite(images / "stack.tif", np.stack([crop] * 5))
    (images / "huge.png").write_bytes(_huge_png(depth=8, colour=0))
    (images / "huge16.png").write_bytes(_huge_png(depth=16, colour=2))
    (images / "huge.tif").write_bytes(_huge_tiff())
    floating = crop.astype(np.float32) / 65535
    for name, value in (("nan.tif", np.nan), ("inf.tif", np.inf)):
        spoiled = floating.copy()
        spoiled[3, 5] = value
        tifffile.imwrite(images / name, spoiled)
    tifffile.imwrite(images / "extreme.tif", np.full_like(floating, 3e38))
    Image.fromarray((crop >> 8).astype(np.uint8)).save(images / "eight.png")

    # Folders of class folders: one bad file among good ones, and bad layouts.
    for kind, name in IMAGE_KINDS.items():
        _copy_classes(data, folders / f"bad_{kind}", ["1cell", "2cell"])
        shutil.copy2(images / name, folders / f"bad_{kind}" / "1cell" / name)
    for name in ("nan.tif", "inf.tif"):
        shutil.copytree(folders / "float_ok", folders / f"float_{name[:3]}")
        shutil.copy2(images / name, folders / f"float_{name[:3]}" / "1cell" / name)
    (folders / "flat").mkdir()
    for file in sorted((data / "1cell").iterdir())[:5]:
        shutil.copy2(file, folders / "flat" / file.name)
    _copy_classes(data, folders / "onecls", ["1cell"])
    _copy_classes(data, folders / "emptycls", ["1cell", "2cell"])
    (folders / "emptycls" / "zz_empty").mkdir()
    for name, mode in (("gray", "L"), ("rgb", "RGB")):
        (folders / "mixed" / name).mkdir(parents=True)
        for i in range(10):
            level = (i * 23) % 256
            Image.new(mode, (16, 16), (level,) * len(mode)).save(
                folders / "mixed" / name / f"{name}{i}.png"
            )
    _copy_classes(data, folders / "other_classes", ["1cell", "2cell"])
    for old, new in (("1cell", "x"), ("2cell", "y")):
        (folders / "other_classes" / old).rename(folders / "other_classes" / new)

    # Config files.
    configs = paths["configs"]
    (configs / "bad.toml").write_text("epochs = = 3\n")
    (configs / "unknown.toml").write_text("colour = 'red'\n")
    (configs / "wrong_type.toml").write_text('epochs = "many"\n')
    (configs / "list_lr.toml").write_text("lr = [1, 2]\n")
    (configs / "negative_lr.toml").write_text("lr = -1.0\n")
    (configs / "latin1.toml").write_bytes('pattern = "caf\u00e9*.tif"\n'.encode("latin-1"))

    # Models and runs damaged in one way each, and things in the way of outputs.
    _models(world / "run", paths["models"])
    shutil.copytree(world / "run", paths["runs"] / "damaged_model")
    (paths["runs"] / "damaged_model" / "model.json").write_text('{"format": "cnnlab-model",')
    (world / "file.txt").write_text("a regular file, not a folder\n")
    (world / "existing.csv").write_text("path,predicted\nold.tif,1cell\n")
    (world / "notrun").mkdir()
    (world / "notrun" / "keep.txt").write_text("the user's own file\n")

    # A small whole field, a crops folder cut from it, and field inputs each bad in one way.
    field = world / "field"
    synth_field(field, size=160, seed=0, counts=dict.fromkeys(CLASSES, 1))
    _cli(["crops", field / "field.tif", "--rois", field / "RoiSet.zip", "--out", world / "crops"])
    rois = (field / "RoiSet.zip").read_bytes()
    (images / "damaged_rois.zip").write_bytes(rois[: len(rois) // 2])
    pixels = tifffile.imread(field / "field.tif")
    labels = tifffile.imread(field / "field_labels.tif")
    tifffile.imwrite(images / "float_labels.tif", labels.astype(np.float32))
    tifffile.imwrite(images / "whole_labels.tif", labels[:50, :60])
    tifffile.imwrite(
        images / "field_stack.tif", np.stack([pixels] * 3), imagej=True, metadata={"axes": "ZYX"}
    )
    (world / "taken-overlay.png").write_bytes(b"the user's picture")

    placeholders = {name: str(path) for name, path in paths.items()}
    placeholders["field"] = str(field)
    placeholders.update(
        w=str(world),
        run=str(world / "run"),
        run32=str(world / "run32"),
        img=str(sorted((data / "1cell").iterdir())[0]),
        png=str(images / "eight.png"),
    )
    return placeholders


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder below ``root``: files by size, mode, mtime and SHA-256."""
    state: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        relative = path.relative_to(root).as_posix()
        if path.is_dir() and not path.is_symlink():
            state[relative] = ("folder", info.st_mode)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
            state[relative] = (info.st_size, info.st_mode, info.st_mtime_ns, digest)
    return state


def _changes(before: dict, after: dict) -> list[str]:
    return [
        *(f"removed {p}" for p in sorted(before.keys() - after.keys())),
        *(f"added {p}" for p in sorted(after.keys() - before.keys())),
        *(f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]),
    ]


@dataclass
class Tree:
    world: Path
    backup: Path
    cache: Path
    paths: dict[str, str]
    pristine: dict[str, tuple]

    def restore(self) -> None:
        shutil.rmtree(self.world)
        shutil.copytree(self.backup, self.world, symlinks=True)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Tree:
    base = tmp_path_factory.mktemp("bad_inputs")
    world, cache = base / "world", base / "cache"
    world.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_CACHE_DIR", str(cache))
        patch.chdir(world)
        patch.setattr(warnings, "showwarning", warnings.showwarning)
        paths = _build(world)
    shutil.copytree(world, base / "backup", symlinks=True)
    return Tree(world, base / "backup", cache, paths, snapshot(world))


# ----------------------------------------------------------------------------- the test
def _run_inline(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse refuses some input itself
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def _run_process(argv: list[str], tree: Tree) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_DEBUG"}
    env["CNNLAB_CACHE_DIR"] = str(tree.cache)
    done = subprocess.run(
        [str(CNNLAB), *argv],
        cwd=tree.paths["cwd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_one_line_exit_2_and_changes_nothing(case, tree, monkeypatch, capsys):
    monkeypatch.setenv("CNNLAB_CACHE_DIR", str(tree.cache))
    monkeypatch.delenv("CNNLAB_DEBUG", raising=False)
    monkeypatch.chdir(tree.paths["cwd"])
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    threads = torch.get_num_threads()
    argv = [part.format(**tree.paths) for part in case.argv]
    try:
        if case.subprocess:
            code, out, err = _run_process(argv, tree)
        else:
            code, out, err = _run_inline(argv, capsys)
    finally:
        torch.set_num_threads(threads)
        changes = _changes(tree.pristine, snapshot(tree.world))
        if changes:
            tree.restore()  # so that the next case starts from the same tree

    lines = err.splitlines()
    problems = []
    if code != 2:
        problems.append(f"exit code {code}, not 2")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr, not 1")
    elif not re.match(r"cnnlab: error: \S", lines[0]):
        problems.append("stderr does not start with 'cnnlab: error: '")
    else:
        missing = [name for name in case.names if not re.search(name, lines[0])]
        if missing:
            problems.append(f"the error does not name {' / '.join(missing)}")
    if out:
        problems.append(f"stdout is not empty: {out[:200]!r}")
    if changes:
        problems.append(f"disk changed: {', '.join(changes[:6])}{' ...' * (len(changes) > 6)}")
    assert not problems, f"{'; '.join(problems)}\nstderr: {err[-1500:]}"


def test_the_suite_covers_enough_cases():
    assert len(CASES) >= 60
    assert len({param.id for param in CASES}) == len(CASES)
