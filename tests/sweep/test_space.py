"""The search space: its three forms, the TOML file, and every bad spec refused in one line."""

from __future__ import annotations

import sys

import pytest

from cnnlab.cli.main import main
from cnnlab.errors import CnnlabError
from cnnlab.sweep import load_space, parse_search
from cnnlab.sweep.results import train_command
from cnnlab.sweep.study import require_optuna
from cnnlab.train.options import RunConfig


def test_the_three_forms_and_their_types():
    lr, batch, epochs, nesterov, augment, wd = parse_search(
        [
            "lr=log:1e-3:0.3",
            "batch_size=32,64,128",
            "epochs=2:6",
            "nesterov=true,false",
            "augment=none|flip|rotate:90,-90",
            "weight-decay=0,1e-4",
        ]
    )
    assert (lr.name, lr.dest, lr.kind, lr.low, lr.high, lr.integer) == (
        "lr",
        "lr",
        "log",
        1e-3,
        0.3,
        False,
    )
    assert (batch.name, batch.kind, batch.choices) == ("batch-size", "choices", (32, 64, 128))
    assert all(type(c) is int for c in batch.choices)
    assert (epochs.kind, epochs.low, epochs.high, epochs.integer) == ("range", 2, 6, True)
    assert nesterov.choices == (True, False)
    assert augment.choices == ("none", "flip", "rotate:90,-90")
    assert augment.option("none") == [] and augment.option("rotate:90,-90") == ["rotate:90,-90"]
    # The flag's own spelling names the parameter, whatever the user typed.
    assert (wd.name, wd.dest, wd.choices) == ("wd", "weight_decay", (0.0, 1e-4))


def test_a_spec_reads_back_as_the_same_parameter():
    specs = [
        "lr=log:0.001:0.3",
        "momentum=0.8:0.99",
        "augment=none|rotate:90,-90",
        "equalize=true,false",
    ]
    params = parse_search(specs)
    assert [p.spec() for p in params] == specs
    assert parse_search([p.spec() for p in params]) == params


def test_the_toml_file_takes_tables_and_strings(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(
        'optimizer = "sgd,adam"\n'
        "[lr]\nlog = [1e-4, 0.1]\n"
        "[momentum]\nrange = [0.5, 0.9]\n"
        "[batch-size]\nchoices = [16, 32]\n"
    )
    params = {p.name: p for p in load_space(path)}
    assert params["optimizer"].choices == ("sgd", "adam")
    assert (params["lr"].kind, params["lr"].low, params["lr"].high) == ("log", 1e-4, 0.1)
    assert (params["momentum"].kind, params["momentum"].high) == ("range", 0.9)
    assert params["batch-size"].choices == (16, 32)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("lr", "write NAME=log:LOW:HIGH"),
        ("speed=1:2", "speed is not a 'cnnlab train' option"),
        ("resume=x,y", "--resume is a 'cnnlab train' option but cannot be searched"),
        ("nproc=1,2", "--nproc is a 'cnnlab train' option but cannot be searched: a sweep"),
        ("lr=0.1", "one value is not a search; it is a fixed option: pass --lr 0.1"),
        ("batch_size=32", "it is a fixed option: pass --batch-size 32"),
        ("nesterov=false", "it is a fixed option: pass --no-nesterov"),
        ("augment=flip", "it is a fixed option: pass --augment flip"),
        ("seed=0,1", "decides which images the trials are scored on"),
        ("split=60,30,10|50,40,10", "decides which images"),
        ("monitor=valid_loss,valid_accuracy", "the sweep's objective"),
        ("out=a,b", "not a hyperparameter"),
        ("lr=log:0:0.1", "a log range needs a positive low end"),
        ("lr=0.3:0.1", "the low end must be below the high end"),
        ("epochs=1.5:3", "takes whole numbers"),
        ("lr=log:small:big", "log:LOW:HIGH takes two numbers"),
        ("momentum=0.5:1", "--momentum must be in [0, 1)"),
        ("model=lenet5,nosuchnet", "--model"),
        ("optimizer=sgd,adamx", "'adamx' is unknown"),
        ("nesterov=yes,no", "is a switch; choose true,false"),
        ("batch-size=32,32", "listed twice"),
        ("batch-size=32,big", "takes whole numbers"),
        ("augment=flip|bogus:3", "bogus"),
    ],
)
def test_a_bad_spec_is_one_line_naming_search(spec, expected):
    with pytest.raises(CnnlabError) as caught:
        parse_search([spec], {"data": ["mnist"]})
    message = str(caught.value)
    assert message.startswith("--search ") and expected in message
    assert "\n" not in message


def test_a_bad_toml_entry_names_the_file_and_the_table(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text("[lr]\nlog = [1e-3, 0.1]\nrange = [1, 2]\n")
    with pytest.raises(CnnlabError, match=r"space.toml: \[lr\]: give exactly one of"):
        load_space(path)
    path.write_text("[lr]\nlog = [0.0, 0.1]\n")
    with pytest.raises(CnnlabError, match=r"space.toml: \[lr\]: a log range needs a positive"):
        load_space(path)
    path.write_text("[batch-size]\nchoices = [16]\n")
    with pytest.raises(CnnlabError, match=r"space.toml: \[batch-size\]: .* pass --batch-size 16$"):
        load_space(path)
    path.write_text("[momentum]\nrange = [0.5, 1.0]\n")
    with pytest.raises(CnnlabError, match=r"space.toml: \[momentum\]: 1: --momentum must be"):
        load_space(path)
    with pytest.raises(CnnlabError, match=r"--space .*missing.toml: no such file"):
        load_space(tmp_path / "missing.toml")


def test_a_choice_is_checked_with_the_fixed_options():
    # adam itself is fine; with the fixed --schedule it must still make a valid run.
    parse_search(["optimizer=sgd,adam"], {"schedule": "step"})
    with pytest.raises(CnnlabError, match="--search lr=0:1: 0: --lr must be positive"):
        parse_search(["lr=0:1"], {"optimizer": "adam"})


def test_the_command_line_gives_back_the_options():
    options = {
        "data": ["/d/a b"],
        "size": [24, 32],
        "augment": ["flip", "rotate:90,-90"],
        "cache": False,
        "nesterov": False,
        "equalize": True,
        "lr": 0.1 + 0.2,
        "batch_size": 16,
    }
    command = train_command(options)
    assert "'/d/a b'" in command and "--no-cache" in command and "--no-nesterov" in command
    # Parsed back by cnnlab train's own parser, the same options, to the last digit.
    from cnnlab.cli.main import build_parser

    args = vars(build_parser().parse_args(__import__("shlex").split(command)[1:]))
    flags = {k: v for k, v in args.items() if v is not None and k not in ("command", "handler")}
    assert RunConfig.from_options(flags) == RunConfig.from_options(options)


def test_without_optuna_the_command_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(CnnlabError) as caught:
        require_optuna()
    assert str(caught.value) == "cnnlab sweep needs Optuna: pip install 'cnnlab[sweep]'"
    assert main(["sweep", "--out", "x", "--search", "lr=0.1:0.2"]) == 2
    assert capsys.readouterr().err == (
        "cnnlab: error: cnnlab sweep needs Optuna: pip install 'cnnlab[sweep]'\n"
    )
