"""The HTTP service (python -m captcha_break.serve): the real server on 127.0.0.1, a real HTTP client, every request
format, bad input answered 4xx in one line while the service keeps serving."""
import base64
import io
import os
import re
import socket
import subprocess
import sys
import threading

import httpx
import numpy as np
import pytest
from PIL import Image
from serving_fixtures import onnx_runs  # noqa: F401 (fixture)
from test_serving_onnx import split_images
from trainer_fixtures import fixed_dataset, trained, variable_dataset  # noqa: F401 (fixtures)

from captcha_break.reader import Reader

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_TIMEOUT = 120


def start(model_dir, *flags):
    """A `python -m captcha_break.serve --port=0` process and its base URL, from the line it prints once it listens."""
    process = subprocess.Popen([sys.executable, "-m", "captcha_break.serve", f"--model_dir={model_dir}", "--port=0",
                                *flags], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(START_TIMEOUT, process.kill)  # a server that never says where it listens
    timer.start()
    line = process.stdout.readline()
    timer.cancel()
    assert line.startswith("serving "), (line, process.stderr.read() if process.poll() is not None else "")
    return process, re.search(r" on (http://127\.0\.0\.1:[0-9]+): POST /read", line).group(1)


@pytest.fixture(scope="module")
def service(onnx_runs):  # noqa: F811
    model_dir, data_dir = onnx_runs["cnn"]
    process, url = start(model_dir, "--max_bytes=300000", "--max_batch=8", "--max_pixels=1000000")
    images = [encoded for encoded, _ in split_images(data_dir)][:8]
    expected = Reader(model_dir).read_batch(images)
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client, images, expected, process
    process.terminate()
    process.wait(timeout=30)


def _png(width, height, noise=False):
    out = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8) if noise else None
    (Image.fromarray(pixels) if noise else Image.new("RGB", (width, height))).save(out, format="PNG")
    return out.getvalue()


def _same(answer, expected):
    text, confidence = expected
    return answer["text"] == text and abs(answer["confidence"] - confidence) <= 1e-4 * max(confidence, 1e-3)


def test_health(service):
    client, _, _, _ = service
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok" and answer.json()["output"] == "positions"
    assert answer.json()["input"] == {"height": 64, "width": 128, "channels": 3}


def test_every_request_format(service):
    client, images, expected, _ = service
    b64 = [base64.b64encode(image).decode() for image in images]
    single = [
        client.post("/read", content=images[0], headers={"Content-Type": "image/png"}),
        client.post("/read", content=images[0]),
        client.post("/read", files={"image": ("a.png", images[0], "image/png")}),
        client.post("/read", json={"image": b64[0]}),
        client.post("/read", json={"image": "data:image/png;base64," + b64[0]}),
        client.post("/read", data={"image": b64[0]}),
    ]
    for answer in single:
        assert answer.status_code == 200, answer.text
        assert _same(answer.json(), expected[0]), (answer.json(), expected[0])
    batches = [
        client.post("/read", json={"images": b64}),
        client.post("/read", files=[("images", (f"{i}.png", image, "image/png")) for i, image in enumerate(images)]),
    ]
    for answer in batches:
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert len(results) == len(expected) and all(_same(a, e) for a, e in zip(results, expected))
    assert client.post("/read", json={"images": []}).json() == {"results": []}


BAD = [  # (request arguments, status, the error's start)
    ({"content": b"not an image"}, 400, "not an image Pillow can read"),
    ({"content": b""}, 400, "empty image: 0 bytes"),
    ({"content": _png(128, 64, noise=True)[:5000]}, 400, "cannot decode the image: image file is truncated"),
    ({"content": b"x" * 300_001}, 413, "the body is 300001 bytes, over the limit of 300000"),
    ({"content": _png(2000, 1000)}, 413, "the image is 2000x1000: 2000000 pixels, over the limit of 1000000"),
    ({"files": {"picture": ("a.png", _png(10, 10), "image/png")}}, 400, "unknown field 'picture' in the form"),
    ({"files": {"image": ("a.png", b"nope", "image/png")}}, 400, "not an image Pillow can read"),
    ({"json": {"img": "AAAA"}}, 400, "unknown field 'img' in the JSON object"),
    ({"json": {"image": "not base64!"}}, 400, "'image' is not valid base64"),
    ({"json": {"image": 5}}, 400, "'image' must be a base64 string, got int"),
    ({"json": {"images": "AAAA"}}, 400, "'images' must be a list of base64 strings"),
    ({"json": {"images": [base64.b64encode(_png(128, 64)).decode(), "AAAA"]}}, 400, "image 1: not an image"),
    ({"json": {"images": [base64.b64encode(_png(8, 8)).decode()] * 9}}, 413, "a batch of 9 images, over the limit"),
    ({"json": ["AAAA"]}, 400, "the JSON body must be an object"),
    ({"content": b"{", "headers": {"Content-Type": "application/json"}}, 400, "the body is not valid JSON"),
    ({"content": b"x", "headers": {"Content-Type": "text/plain"}}, 415, "content type 'text/plain'"),
    ({"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=x"}}, 400, ""),
]


@pytest.mark.parametrize("arguments, status, message", BAD, ids=range(len(BAD)))
def test_bad_input_is_one_4xx_line(service, arguments, status, message):
    client, _, _, _ = service
    answer = client.post("/read", **arguments)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error.startswith(message) and "\n" not in error, error


def test_other_paths_and_methods(service):
    client, _, _, _ = service
    assert client.get("/read").status_code == 405 and client.get("/read").json() == {"error": "Method Not Allowed"}
    assert client.get("/nothing").status_code == 404


def test_a_thousand_bad_requests_mixed_into_good_ones(service):
    """The issue's target: every good answer right, the service alive after 1,000 bad requests (bounded loop)."""
    client, images, expected, process = service
    rng = np.random.default_rng(0)
    wrong, good = 0, 0
    for i in range(1000):
        arguments, status, _ = BAD[i % len(BAD)]
        wrong += client.post("/read", **arguments).status_code != status
        if i % 10 == 0:
            k = int(rng.integers(len(images)))
            answer = client.post("/read", content=images[k])
            good += answer.status_code == 200 and _same(answer.json(), expected[k])
    assert (wrong, good) == (0, 100)
    assert process.poll() is None and client.get("/health").status_code == 200


def test_bad_start_is_one_error_line(onnx_runs, tmp_path):  # noqa: F811
    done = subprocess.run([sys.executable, "-m", "captcha_break.serve", f"--model_dir={tmp_path}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path}/reader.json not found")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "captcha_break.serve", f"--model_dir={onnx_runs['cnn'][0]}",
                               f"--port={port}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
