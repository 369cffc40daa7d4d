"""TorchScript exports load with ``torch.jit.load`` in a fresh Python that never imports cnnlab.

Every built-in model is exported (untrained, one or three channels, 8- or 16-bit statistics);
one separate interpreter loads all the archives, as a consumer would, and its outputs are
compared with the eager models' here.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from cnnlab.deploy import export_torchscript
from cnnlab.deploy.torchscript import META_FILE
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model, list_models

CONFIGS = itertools.cycle([(3, 16), (1, 8), (3, 8), (1, 16)])
SIZE = (24, 24)

CONSUMER = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np, torch
    warnings.simplefilter("ignore")
    assert "cnnlab" not in sys.modules
    results = {}
    for name in json.loads(sys.argv[1]):
        extra = {"cnnlab.json": ""}
        model = torch.jit.load(f"{sys.argv[2]}/{name}.pt", _extra_files=extra)
        images = torch.from_numpy(np.load(f"{sys.argv[2]}/{name}.npy"))
        with torch.no_grad():
            np.save(f"{sys.argv[2]}/{name}.out.npy", model(images).numpy())
            one = model(images[:1]).numpy()  # another batch size than the trace's
        np.save(f"{sys.argv[2]}/{name}.one.npy", one)
        results[name] = json.loads(extra["cnnlab.json"])["class_names"]
    print(json.dumps(results))
    """
)


def test_every_model_runs_in_a_fresh_torch_jit_load(tmp_path):
    generator = torch.Generator().manual_seed(0)
    expected = {}
    for name, (channels, bit_depth) in zip(list_models(), CONFIGS, strict=False):
        torch.manual_seed(0)
        model = create_model(name, in_chans=channels, num_classes=3, input_size=SIZE).eval()
        mean, std = (33.0, 78.0) if bit_depth == 8 else (2500.0, 900.0)
        model.standardize.set_statistics([mean] * channels, [std] * channels)
        high = 256 if bit_depth == 8 else 65536
        images = torch.randint(0, high, (5, channels, *SIZE), generator=generator).float()
        export_torchscript(model, tmp_path / f"{name}.pt", class_names=["a", "b", name])
        np.save(tmp_path / f"{name}.npy", images.numpy())
        with torch.no_grad():
            expected[name] = torch.softmax(model(images), dim=1).numpy()
    names = list(expected)
    done = subprocess.run(
        [sys.executable, "-c", CONSUMER, json.dumps(names), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    classes = json.loads(done.stdout)
    for name in names:
        got = np.load(tmp_path / f"{name}.out.npy")
        assert got.shape == expected[name].shape
        assert np.array_equal(got.argmax(1), expected[name].argmax(1))
        assert float(np.abs(got - expected[name]).max()) <= 1e-5
        assert np.allclose(np.load(tmp_path / f"{name}.one.npy"), got[:1], atol=1e-6)
        assert classes[name] == ["a", "b", name]


# Loading is what a consumer does; torch's notice that TorchScript is deprecated is no news here.
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:DeprecationWarning")
def test_export_leaves_the_model_and_refuses_what_it_cannot_write(tmp_path):
    model = create_model("lenet5", in_chans=1, num_classes=2, input_size=(28, 28))
    model.class_names = ("rod", "coccus")
    path = export_torchscript(model.train(), tmp_path / "m.pt")
    assert model.training  # exported from an eval-mode copy: the caller's model is untouched
    archive = torch.jit.load(str(path), _extra_files={META_FILE: ""})
    assert isinstance(archive, torch.jit.ScriptModule)
    with pytest.raises(CnnlabError, match=r"m\.pt: exists"):
        export_torchscript(model, path)
    with pytest.raises(CnnlabError, match=r"the folder .*missing does not exist"):
        export_torchscript(model, tmp_path / "missing" / "m.pt")
    del model.class_names
    with pytest.raises(CnnlabError, match="class_names: 0 name"):
        export_torchscript(model, tmp_path / "n.pt")
