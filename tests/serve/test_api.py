"""The HTTP API with FastAPI's test client: answers checked against cnnlab's own predictions."""

from __future__ import annotations

import io
import json
import re
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from cnnlab.errors import CnnlabError
from cnnlab.export import predict as predict_files
from cnnlab.export.saved import load
from cnnlab.inspect.activations import leaf_modules
from cnnlab.inspect.kernels import KERNELS
from cnnlab.serve.images import decode_data_url, prepare_drawing


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _tiff16(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels.astype(np.uint16))
    return buffer.getvalue()


def _drawing(digit: str) -> bytes:
    """A 280x280 canvas as the page sends it: white pen strokes on black."""
    image = Image.new("RGB", (280, 280), "black")
    draw = ImageDraw.Draw(image)
    if digit == "1":
        draw.line([(150, 40), (140, 240)], fill="white", width=22)
    else:
        draw.ellipse([80, 40, 200, 240], outline="white", width=22)
    return _png(np.asarray(image))


def _digit_files(folder: Path, digit: int, count: int) -> list[Path]:
    return sorted((folder / str(digit)).glob("*.png"))[-count:]


def _one_line_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str)
    assert "\n" not in body["detail"] and body["detail"]
    return body["detail"]


# ----------------------------------------------------------------------------- runs
def test_runs_describe_the_model_files(client, lenet_run, mlp_run, bacteria_run) -> None:
    runs = client.get("/api/runs").json()
    assert [run["id"] for run in runs] == ["lenet", "mlp", "run"]
    for run, folder in zip(runs, (lenet_run, mlp_run, bacteria_run), strict=True):
        meta = json.loads((folder / "model.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        assert run["classes"] == meta["class_names"]
        assert [run["height"], run["width"]] == meta["input_size"]
        assert run["channels"] == meta["in_chans"] and run["bit_depth"] == meta["bit_depth"]
        assert run["model"] == meta["architecture"]["name"]
        assert run["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
        assert Path(run["path"]) == folder
    assert [run["digits"] for run in runs] == [True, True, False]


def test_two_folders_of_one_name_get_a_suffix(make_client, lenet_run, mlp_run, tmp_path) -> None:
    other = tmp_path / "elsewhere" / lenet_run.name
    shutil.copytree(lenet_run, other)
    client = make_client([lenet_run, other / "model.json", mlp_run])
    runs = client.get("/api/runs").json()
    assert [run["id"] for run in runs] == ["lenet", "lenet-2", "mlp"]
    assert Path(runs[1]["path"]) == other


def test_one_folder_twice_is_refused(make_client, lenet_run, mlp_run, tmp_path) -> None:
    """Served twice, its two reviews would write one relabel.csv over each other."""
    link = tmp_path / "link"
    link.symlink_to(lenet_run)
    for again in (lenet_run, lenet_run / "model.json", link):
        with pytest.raises(CnnlabError, match="the same folder as") as error:
            make_client([lenet_run, mlp_run, again])
        assert str(again) in str(error.value) and "\n" not in str(error.value)


# ----------------------------------------------------------------------------- predict
def test_predict_equals_cnnlab_predict(client, lenet_run, digits_folder) -> None:
    files = [*_digit_files(digits_folder, 3, 2), *_digit_files(digits_folder, 7, 1)]
    upload = [("file", (path.name, path.read_bytes(), "image/png")) for path in files]
    answer = client.post("/api/predict", files=upload).json()
    expected = predict_files(load(lenet_run), files)
    assert answer["run"] == "lenet"
    assert [p["file"] for p in answer["predictions"]] == [path.name for path in files]
    for prediction, row, top in zip(
        answer["predictions"], expected.probabilities.numpy(), expected.predicted, strict=True
    ):
        assert prediction["class"] == top
        probabilities = [prediction["probabilities"][name] for name in expected.class_names]
        np.testing.assert_allclose(probabilities, row, rtol=0, atol=1e-6)
    assert answer["class"] == answer["predictions"][0]["class"]
    assert answer["probabilities"] == answer["predictions"][0]["probabilities"]


def test_predict_a_16_bit_tiff_with_a_chosen_run(client, bacteria_run, tmp_path) -> None:
    crop = np.random.default_rng(3).integers(20_000, 40_000, size=(24, 20))
    path = tmp_path / "crop.tif"
    path.write_bytes(_tiff16(crop))
    answer = client.post(
        "/api/predict",
        files={"file": ("crop.tif", path.read_bytes(), "image/tiff")},
        data={"run": "run"},
    ).json()
    expected = predict_files(load(bacteria_run), [path])
    assert answer["run"] == "run" and answer["class"] == expected.predicted[0]
    probabilities = [answer["probabilities"][name] for name in expected.class_names]
    np.testing.assert_allclose(probabilities, expected.probabilities[0].numpy(), atol=1e-6)


# ----------------------------------------------------------------------------- analyze
@pytest.mark.parametrize("digit", ["1", "0"])
def test_a_drawn_digit_is_recognised_by_both_models(client, digit: str) -> None:
    for run in ("lenet", "mlp"):
        answer = client.post(
            "/api/analyze",
            files={"file": ("canvas.png", _drawing(digit), "image/png")},
            data={"source": "drawing", "run": run},
        ).json()
        assert answer["run"] == run
        assert answer["class"] == digit, answer["probabilities"]
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_analyze_shows_the_input_every_layer_and_gradcam(client, lenet_run) -> None:
    canvas = _drawing("0")
    answer = client.post(
        "/api/analyze", files={"file": ("c.png", canvas, "image/png")}, data={"source": "drawing"}
    ).json()
    seen, depth = decode_data_url(answer["input"])
    gray = np.asarray(Image.open(io.BytesIO(canvas)).convert("L"))
    np.testing.assert_array_equal(seen[0], prepare_drawing(gray))
    assert depth == 8
    model = load(lenet_run)
    names = [name for name, _ in leaf_modules(model)]
    assert [layer["name"] for layer in answer["layers"]] == names
    for layer in answer["layers"]:
        shape = layer["shape"]
        if len(shape) == 3:
            assert len(layer["maps"]) == min(shape[0], 16)
            first, _ = decode_data_url(layer["maps"][0])
            assert first.shape == (3, shape[1], shape[2])  # viridis RGB
        else:
            assert len(layer["values"]) == min(int(np.prod(shape)), 128)
    conv = next(layer for layer in answer["layers"] if layer["kind"] == "conv")
    assert conv["shape"] == [6, 28, 28]
    heat, _ = decode_data_url(answer["gradcam"])
    assert heat.shape[1:] == seen.shape[1:] == (28, 28)
    assert answer["target"] == answer["class"] and answer["method"] == "Grad-CAM"


def test_analyze_is_fast_for_lenet(client) -> None:
    canvas = _drawing("1")
    times = []
    for _ in range(6):
        answer = client.post(
            "/api/analyze",
            files={"file": ("c.png", canvas, "image/png")},
            data={"source": "drawing"},
        ).json()
        times.append(answer["milliseconds"])
    assert statistics.median(times[1:]) < 100.0, times


def test_analyze_a_16_bit_file_is_shown_stretched(client) -> None:
    crop = np.random.default_rng(4).integers(30_000, 30_400, size=(28, 28))
    answer = client.post(
        "/api/analyze",
        files={"file": ("crop.tif", _tiff16(crop), "image/tiff")},
        data={"source": "file", "run": "run"},
    ).json()
    seen, _ = decode_data_url(answer["input"])
    # 400 counts out of 65,535 would be one grey level unstretched; stretched, the full range.
    assert seen.max() - seen.min() > 200
    assert answer["class"] in ("1cell", "2cell", "groups", "rien")


# ----------------------------------------------------------------------------- teach
def test_kernels_and_the_kernel_route(client) -> None:
    kernels = client.get("/api/kernels").json()
    assert {k["name"]: k["matrix"] for k in kernels} == {
        name: matrix.tolist() for name, matrix in KERNELS.items()
    }
    image = (
        "data:image/png;base64,"
        + __import__("base64").b64encode(_png(np.zeros((28, 28), np.uint8))).decode()
    )
    answer = client.post(
        "/api/kernel",
        json={"image": image, "kernel": "1,0,-1;2,0,-2;1,0,-1", "padding": 1, "pool": "max:2"},
    ).json()
    assert answer["output_size"] == [14, 14] and answer["input_size"] == [28, 28]
    assert answer["explanation"].endswith("max pool 2: 28 / 2 = 14")


# ----------------------------------------------------------------------------- docs, page
def test_docs_work_offline(client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "://" not in page.text and "//cdn" not in page.text
    assets = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
    assert len(assets) >= 3
    for asset in assets:
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset
    assert client.get("/openapi.json").json()["paths"]["/api/predict"]
    assert client.get("/redoc").status_code == 404


# ----------------------------------------------------------------------------- refusals
def test_bad_requests_get_one_line_reasons(make_client, lenet_run, bacteria_run) -> None:
    client = make_client([lenet_run, bacteria_run], max_upload_bytes=2_000)
    digit = _png(np.zeros((28, 28), np.uint8))
    noise = _png(np.random.default_rng(0).integers(0, 256, (60, 60), dtype=np.uint8))
    assert len(noise) > 2_000

    def post(route: str = "/api/predict", **kwargs):
        return client.post(route, **kwargs)

    detail = _one_line_error(post(files={"file": ("big.png", noise, "image/png")}), 413)
    assert "--max-upload-mb" in detail
    chunked = post(
        content=(part for part in [b"x" * 50_000] * 3),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    _one_line_error(chunked, 413)
    detail = _one_line_error(post(files={"file": ("notes.txt", b"hello", "text/plain")}), 415)
    assert detail.startswith("notes.txt: ")
    detail = _one_line_error(
        post(files={"file": ("d.png", digit, "image/png")}, data={"run": "nope"}), 404
    )
    assert "lenet" in detail
    assert _one_line_error(post(data={"run": "lenet"}), 422) == "file: field required"
    detail = _one_line_error(
        post(files={"file": ("d.png", digit, "image/png")}, data={"run": "run"}), 422
    )
    assert "8-bit" in detail and "16-bit" in detail
    tiny = _png(np.zeros((3, 3), np.uint8))
    assert "too small" in _one_line_error(post(files={"file": ("t.png", tiny, "image/png")}), 422)
    detail = _one_line_error(
        post(
            "/api/analyze",
            files={"file": ("d.png", digit, "image/png")},
            data={"source": "drawing", "run": "run"},
        ),
        422,
    )
    assert "drop an image file" in detail
    _one_line_error(
        post("/api/analyze", files={"file": ("d.png", digit)}, data={"source": "x"}), 422
    )
    _one_line_error(client.post("/api/kernel", json={"kernel": "edge1"}), 422)
    _one_line_error(client.get("/api/nothing"), 404)
    _one_line_error(client.put("/api/runs"), 405)


def test_refusals_speak_the_clients_terms(client) -> None:
    """Not pydantic's internals (``file.0: value error, expected uploadfile``, ``1: json ...``)."""
    form = client.post("/api/predict", data={"file": "digit.png"})
    assert _one_line_error(form, 422) == (
        "file: send the image as a multipart upload in the field 'file'"
    )
    raw = client.post(
        "/api/predict",
        content=b"file=abc",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert _one_line_error(raw, 422).startswith("file: send the image as a multipart upload")
    broken = client.post(
        "/api/kernel", content=b"{not json", headers={"content-type": "application/json"}
    )
    detail = _one_line_error(broken, 422)
    assert detail.startswith("the body must be JSON: ") and "position" not in detail
    assert "(at character 1)" in detail
    for payload in ([], "x"):
        detail = _one_line_error(client.post("/api/kernel", json=payload), 422)
        assert detail == "the body must be a JSON object (see /docs)"
    detail = _one_line_error(client.post("/api/kernel", content=b"{not json"), 422)
    assert detail == "the body must be a JSON object (see /docs)"
    detail = _one_line_error(client.post("/api/kernel", json={"image": 5}), 422)
    assert detail == "image: input should be a valid string"


def test_the_upload_limit_is_counted_in_mib_and_said_so(make_client, lenet_run) -> None:
    mib = 1024 * 1024
    client = make_client([lenet_run], max_upload_bytes=mib)
    not_found = client.get("/api/nothing")

    def upload(size: int):
        return client.post("/api/predict", files={"file": ("f.png", b"\0" * size, "image/png")})

    # Exactly 1 MiB is within the limit (refused only as not an image); one byte more is not.
    assert upload(mib).status_code == 415
    detail = _one_line_error(upload(mib + 1), 413)
    assert detail.startswith("f.png (1,048,577 bytes) is larger than the 1 MiB limit")
    assert "(--max-upload-mb)" in detail
    # Past the body limit, refused before the form is read: the same words and format.
    body = upload(2 * mib)
    detail = _one_line_error(body, 413)
    assert "is larger than the 1 MiB limit (--max-upload-mb)" in detail
    assert "1,114,112" not in detail
    assert body.headers["content-type"] == not_found.headers["content-type"]
    # Byte for byte as every other refusal is written (compact JSON).
    for response in (body, not_found):
        expected = json.dumps(response.json(), separators=(",", ":"), ensure_ascii=False)
        assert response.content == expected.encode()
    chunked = client.post(
        "/api/predict",
        content=(part for part in [b"x" * mib] * 3),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert _one_line_error(chunked, 413).startswith("the request body is larger than the 1 MiB")


ROUTES = ["/api/predict", "/api/analyze", "/api/kernel", "/api/runs", "/api/kernels", "/"]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from([*ROUTES, "/api/review", "/api/review/decision", "/static/x"]),
    body=st.binary(max_size=300),
    field=st.sampled_from(["file", "run", "source", "image", "x"]),
    text=st.text(max_size=30),
    as_file=st.booleans(),
)
def test_junk_never_gets_a_500(client, route, body, field, text, as_file) -> None:
    if as_file:
        response = client.post(
            route, files={field: ("j.png", body, "image/png")}, data={"run": text}
        )
    else:
        response = client.post(route, content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        _one_line_error(response, response.status_code)


@pytest.mark.parametrize(
    "payload",
    [
        {"image": "data:image/png;base64,AAAA", "kernel": "edge1"},
        {"image": 5, "kernel": "edge1"},
        {"image": "x", "kernel": ["a"]},
        {"image": "x", "kernel": "edge1", "padding": {"a": 1}},
        {"image": "x", "kernel": "edge1", "stride": "fast"},
        [],
        None,
    ],
)
def test_junk_kernel_requests_are_4xx(client, payload) -> None:
    response = client.post("/api/kernel", json=payload)
    assert 400 <= response.status_code < 500
    _one_line_error(response, response.status_code)


# ----------------------------------------------------------------------------- CLI
def _cli(monkeypatch, argv: list[str]) -> int:
    from cnnlab.cli import main

    return main(argv)


def test_cli_refuses_a_run_it_cannot_load(monkeypatch, tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    started = []
    monkeypatch.setattr("cnnlab.serve.server.serve_forever", lambda *a: started.append(a))
    assert _cli(monkeypatch, ["serve", str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"cannot serve {tmp_path / 'empty'}" in error
    assert not started


def test_cli_warns_off_loopback_and_refuses_a_busy_port(monkeypatch, lenet_run, capsys) -> None:
    import socket

    from cnnlab.serve import server

    served = []
    monkeypatch.setattr(server, "serve_forever", lambda app, sock: served.append(app))
    real_bind = server.bind_socket
    # The "other" host is only named: the socket is still bound on loopback.
    monkeypatch.setattr(server, "bind_socket", lambda host, port: real_bind("127.0.0.1", 0))
    assert _cli(monkeypatch, ["serve", str(lenet_run), "--host", "192.0.2.1"]) == 0
    out, err = capsys.readouterr()
    assert served and "serving lenet at http://127.0.0.1:" in out
    assert err.count("\n") == 1 and "warning: --host 192.0.2.1" in err
    monkeypatch.setattr(server, "bind_socket", real_bind)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert _cli(monkeypatch, ["serve", str(lenet_run), "--port", str(port)]) == 2
    assert f"--port {port}: cannot listen there" in capsys.readouterr().err
    assert server.is_loopback("127.0.0.1") and server.is_loopback("localhost")
    assert server.is_loopback("::1") and not server.is_loopback("0.0.0.0")


def test_cli_refuses_one_folder_twice(monkeypatch, lenet_run, capsys) -> None:
    started = []
    monkeypatch.setattr("cnnlab.serve.server.serve_forever", lambda *a: started.append(a))
    assert _cli(monkeypatch, ["serve", str(lenet_run), str(lenet_run)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"RUN {lenet_run}: the same folder as" in error
    assert not started


def test_cli_port_0_takes_a_free_port_and_prints_it(monkeypatch, lenet_run, capsys) -> None:
    from cnnlab.serve import server

    ports = []
    monkeypatch.setattr(
        server, "serve_forever", lambda app, sock: ports.append(sock.getsockname()[1])
    )
    assert _cli(monkeypatch, ["serve", str(lenet_run), "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert ports and ports[0] != 0
    assert f"at http://127.0.0.1:{ports[0]}/ " in out


def test_cli_help_describes_every_option(capsys) -> None:
    with pytest.raises(SystemExit):
        _cli(None, ["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    port = text[text.index("--port PORT") :]
    assert port.split("--max-upload-mb")[0].strip() != "--port PORT [8000]"
    assert "0 takes a free one" in port and "[8000]" in port
    assert "in MiB" in text
