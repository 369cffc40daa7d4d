"""A real uvicorn server on 127.0.0.1 under load: 500 predictions, 8 connections, no errors."""

from __future__ import annotations

import json
import urllib.request

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.serve import create_app
from cnnlab.serve.load import load_test, multipart
from cnnlab.serve.server import background_server


def test_500_predictions_from_8_connections(lenet_run, digits_folder) -> None:
    digit = sorted((digits_folder / "4").glob("*.png"))[-1]
    body, content_type = multipart([("four.png", digit.read_bytes(), "image/png")], {})
    with background_server(create_app([lenet_run])) as url:
        assert url.startswith("http://127.0.0.1:")
        result = load_test(
            f"{url}/api/predict", body, content_type, requests=500, connections=8, deadline=90
        )
        # The server still answers, and answers the same as before the load.
        request = urllib.request.Request(
            f"{url}/api/predict", data=body, headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            after = json.load(response)
    assert result.errors == (), result.errors[:3]
    assert len(result.latencies) == 500 and result.statuses == {200: 500}
    assert after["class"] == "4"
    print(result.summary())


def test_the_load_client_sends_only_to_loopback() -> None:
    with pytest.raises(CnnlabError, match="loopback"):
        load_test("http://192.0.2.1:8000/api/predict", b"", "text/plain", requests=1)


def test_the_server_stops_and_frees_its_port(lenet_run) -> None:
    with background_server(create_app([lenet_run])) as url:
        pass
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/api/runs", timeout=2)
