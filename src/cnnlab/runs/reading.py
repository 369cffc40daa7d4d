"""Reading a run back: the images it trained and was tested on, and how it is judged."""

from __future__ import annotations

import warnings
from pathlib import Path

from cnnlab.data.relabel import applied_decisions
from cnnlab.data.sources import DataSpec, load_manifest_split
from cnnlab.data.split import Split
from cnnlab.runs.folder import read_config

#: The subset a run is judged on, in order of preference.
HEADLINE_ORDER = ("test", "valid", "train")


def headline_subset(metrics: dict) -> str:
    """The subset whose accuracy a run is judged by: test, else validation, else training."""
    return next(name for name in (*HEADLINE_ORDER, *metrics) if name in metrics)


def data_spec(config: dict) -> DataSpec:
    """The data options of a run's ``config.json``."""
    size = config.get("size")
    split = config.get("split")
    return DataSpec(
        data=tuple(config.get("data") or ("mnist",)),
        pattern=config.get("pattern"),
        size=tuple(size) if size else None,
        channels=config.get("channels"),
        plane=config.get("plane"),
        split=tuple(split) if split else None,
        equalize=bool(config.get("equalize")),
        valid_on=config.get("valid_on", "valid"),
        seed=int(config.get("train", {}).get("seed", 0)),
        skip_bad=bool(config.get("skip_bad")),
        cache=bool(config.get("cache", True)),
        convert_bit_depth=bool(config.get("convert_bit_depth")),
    )


def load_run_split(run_dir: str | Path, quiet: bool = False) -> Split:
    """The train/valid/test split of a run, re-loaded from its config.json (and split.csv).

    Folder data is re-read and put back into the subsets the manifest records, so the report
    and later evaluations look at exactly the images the run trained and was tested on.
    ``quiet`` silences the warnings that reading the data gave at training time already.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    relabel = applied_decisions(run_dir, config)  # the label decisions it was trained with
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        return load_manifest_split(data_spec(config), run_dir / "split.csv", relabel)
