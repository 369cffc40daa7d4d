"""Reading a run back: its data options and the subset it is judged on."""

from __future__ import annotations

import dataclasses

from cnnlab.runs.folder import read_config
from cnnlab.runs.reading import data_spec, headline_subset
from cnnlab.train.run import RunConfig, run_training


def test_the_headline_subset_prefers_test_then_valid_then_train():
    assert headline_subset({"train": {}, "valid": {}, "test": {}}) == "test"
    assert headline_subset({"train": {}, "valid": {}}) == "valid"
    assert headline_subset({"train": {}}) == "train"


def test_a_runs_folder_gives_back_the_data_options_it_was_trained_with(tmp_path):
    from cnnlab.synth import synth_bacteria

    synth_bacteria(tmp_path / "data", per_class=8, seed=0, min_size=16, max_size=20)
    config = RunConfig.from_options(
        {
            "data": [str(tmp_path / "data")],
            "pattern": "*.tif",
            "size": "16x20",
            "channels": 1,
            "split": "50,25,25",
            "equalize": True,
            "seed": 3,
            "epochs": 1,
            "out": str(tmp_path / "run"),
            "quiet": True,
            "report": False,
            "cache": False,
        }
    )
    out = run_training(config)
    assert data_spec(read_config(out)) == config.data_spec()
    assert dataclasses.asdict(config.data_spec())["size"] == (16, 20)
