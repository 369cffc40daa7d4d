"""Issue 15: latency and throughput of ``cnnlab serve`` under a bounded local load.

Starts the application with uvicorn on 127.0.0.1 (a free port, in this process), then sends
``--requests`` POSTs from ``--connections`` keep-alive connections, for two routes:

* ``/api/predict`` with one 28x28 PNG digit (what a lab script sends), and
* ``/api/analyze`` with a 280x280 canvas drawing (what the page sends on every stroke:
  probabilities, every layer's maps and Grad-CAM).

It prints p50/p95/p99 latency (client side, queueing included) and throughput, and the
server-side time of one analysis. Without RUN it serves an untrained LeNet-5 (latency does not
depend on the weights); give a run folder to measure that model.

    python bench/serve.py [RUN] [--requests 500] [--connections 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _untrained_lenet(folder: Path) -> Path:
    from cnnlab.export.saved import save_model
    from cnnlab.models import create_model

    model = create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))
    save_model(model, folder, [str(digit) for digit in range(10)])
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run or model folder [an untrained LeNet-5]")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch threads [2]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from cnnlab.serve import create_app
    from cnnlab.serve.load import load_test, multipart
    from cnnlab.serve.server import background_server

    digit = Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))
    canvas = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(canvas).line([(150, 40), (140, 240)], fill=255, width=22)
    bodies = {
        "/api/predict (one 28x28 PNG)": multipart([("digit.png", _png(digit), "image/png")], {}),
        "/api/analyze (canvas drawing)": multipart(
            [("canvas.png", _png(canvas), "image/png")], {"source": "drawing"}
        ),
    }
    with tempfile.TemporaryDirectory() as scratch:
        run = args.run or _untrained_lenet(Path(scratch) / "lenet5")
        with background_server(create_app([run])) as url:
            print(f"cnnlab serve at {url}, {args.threads} torch threads, {run}")
            for name, (body, kind) in bodies.items():
                route = name.split()[0]
                load_test(f"{url}{route}", body, kind, requests=20, connections=1)  # warm up
                result = load_test(
                    f"{url}{route}",
                    body,
                    kind,
                    requests=args.requests,
                    connections=args.connections,
                )
                print(f"{name}: {result.summary()}")
            _server_side(url, *bodies["/api/analyze (canvas drawing)"])


def _server_side(url: str, body: bytes, kind: str) -> None:
    """The analysis's own time (the ``milliseconds`` field), one request at a time."""
    import json
    import urllib.request

    times = []
    for _ in range(30):
        request = urllib.request.Request(
            f"{url}/api/analyze", data=body, headers={"Content-Type": kind}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            times.append(json.load(response)["milliseconds"])
    print(
        f"/api/analyze server-side, one at a time: median {statistics.median(times):.1f} ms, "
        f"max {max(times):.1f} ms (30 requests)"
    )


if __name__ == "__main__":
    main()
