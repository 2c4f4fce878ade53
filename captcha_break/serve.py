"""The HTTP service: a Reader behind `POST /read` and `GET /health`, on Starlette and uvicorn.

    python -m captcha_break.serve --model_dir=runs/ctc --port=8080      # or: captcha-serve --model_dir=runs/ctc
    serving runs/ctc (ctc, 36 characters, 64x128) on http://127.0.0.1:8080: POST /read, GET /health

    curl --data-binary @a.png -H 'Content-Type: image/png' localhost:8080/read      # raw bytes
    curl -F image=@a.png localhost:8080/read                                          # multipart, one image
    curl -F images=@a.png -F images=@b.png localhost:8080/read                        # multipart, a batch
    curl -d '{"image": "<base64>"}' -H 'Content-Type: application/json' localhost:8080/read
    curl -d '{"images": ["<base64>", "<base64>"]}' -H 'Content-Type: application/json' localhost:8080/read
    curl --data-urlencode image=<base64> localhost:8080/read                          # a form, base64

One image answers {"text": "7K2Q", "confidence": 0.93}; a batch (`images`) answers {"results": [{...}, ...]} in its
order. `GET /health` answers {"status": "ok", ...what the model reads}. Bad input answers 4xx with {"error": "one
line"}: 400 not an image, bad base64, form or JSON, a wrong field (naming the ones accepted); 413 a body over
--max_bytes, a batch over --max_batch or an image over --max_pixels; 415 another content type. One bad image fails
its batch, naming its index. Nothing a request sends stops the service. A model_dir without reader.onnx, or an
address in use, is one `error: ...` line and exit status 1.

Why Starlette and uvicorn: Starlette is the ASGI toolkit FastAPI is built on (Encode's, maintained, one small
dependency), and uvicorn its reference server; the service parses bytes, not typed JSON models, so FastAPI's
pydantic layer would add weight and nothing else. Decoding and onnxruntime run in Starlette's thread pool, so the
event loop keeps answering while images are read (onnxruntime sessions are thread-safe).
"""
import base64
import binascii
import json
import socket
import urllib.parse

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.responses import JSONResponse
from starlette.routing import Route

from captcha_break import command
from captcha_break.errors import ImageError, ReaderError, TooLargeError
from captcha_break.reader import Reader

MAX_BYTES = 4 * 1024 * 1024  # a request's body: a batch of 64 captchas of 64 KB fits
MAX_BATCH = 64
MAX_PIXELS = 4_000_000  # per image, checked from its header: a captcha is a few thousand pixels
FIELDS = ("image", "images")


class BadRequest(Exception):
    """A request the service refuses: its status and one line."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _b64(value, where):
    if not isinstance(value, str):
        raise BadRequest(400, f"{where} must be a base64 string, got {type(value).__name__}")
    if value.startswith("data:") and "," in value:  # a data URL: data:image/png;base64,....
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(400, f"{where} is not valid base64") from None


def _one_or_batch(fields, where):
    """(list of values, whether a batch) from {field: [values]} holding `image` once or `images` any times."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown or not fields:
        named = f"unknown field {unknown[0]!r}" if unknown else "no image"
        raise BadRequest(400, f"{named} in the {where}: send one image as 'image' or a batch as 'images'")
    if len(fields) == 2:
        raise BadRequest(400, f"both 'image' and 'images' in the {where}: send one of them")
    if "image" in fields:
        if len(fields["image"]) != 1:
            raise BadRequest(400, f"{len(fields['image'])} 'image' fields in the {where}: send a batch as 'images'")
        return fields["image"], False
    return fields["images"], True


async def _body(request, max_bytes):
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BadRequest(413, f"the body is {declared} bytes, over the limit of {max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BadRequest(413, f"the body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _images(request, max_bytes):
    """(list of encoded images, whether a batch) from a /read request, or BadRequest."""
    body = await _body(request, max_bytes)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        async def stream():
            yield body
        try:
            form = await MultiPartParser(request.headers, stream(), max_files=MAX_BATCH * 2,
                                         max_fields=MAX_BATCH * 2, max_part_size=max_bytes).parse()
        except MultiPartException as e:
            raise BadRequest(400, f"cannot read the multipart body: {e.message}") from None
        fields = {}
        for name, value in form.multi_items():
            fields.setdefault(name, []).append(value)
        values, batch = _one_or_batch(fields, "form")
        images = []
        for i, value in enumerate(values):
            where = f"field {'images' if batch else 'image'}" + (f" {i}" if batch else "")
            images.append(await value.read() if hasattr(value, "read") else _b64(value, where))
        return images, batch
    if kind == "application/x-www-form-urlencoded":  # image=<base64>, as ocr_api_server takes it
        try:
            pairs = urllib.parse.parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest(400, "the body is not a URL-encoded form: send image bytes with Content-Type "
                                  "image/png (or another image/*)") from None
        fields = {}
        for name, value in pairs:
            fields.setdefault(name, []).append(value)
        values, batch = _one_or_batch(fields, "form")
        return [_b64(v, f"field {'images' if batch else 'image'}") for v in values], batch
    if kind == "application/json":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest(400, f"the body is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise BadRequest(400, "the JSON body must be an object: {\"image\": base64} or {\"images\": [base64]}")
        values, batch = _one_or_batch({k: [v] for k, v in data.items()}, "JSON object")
        if batch:
            if not isinstance(values[0], list):
                raise BadRequest(400, "'images' must be a list of base64 strings")
            return [_b64(v, f"images[{i}]") for i, v in enumerate(values[0])], True
        return [_b64(values[0], "'image'")], False
    if kind in ("", "application/octet-stream") or kind.startswith("image/"):
        return [body], False
    raise BadRequest(415, f"content type {kind!r}: send image bytes (image/* or application/octet-stream), "
                          "multipart/form-data or application/json")


def create_app(reader, model_dir="", max_bytes=MAX_BYTES, max_batch=MAX_BATCH):
    """The ASGI app answering from `reader` (a captcha_break.reader.Reader)."""
    config = reader.config
    health = {"status": "ok", "model_dir": model_dir, "model": config.get("model"), "output": reader.kind,
              "charset": reader.charset, "label_lengths": config.get("label_lengths"),
              "input": {"height": reader.shape[0], "width": reader.shape[1], "channels": reader.shape[2]},
              "max_bytes": max_bytes, "max_batch": max_batch}

    async def read(request):
        try:
            images, batch = await _images(request, max_bytes)
            if len(images) > max_batch:
                raise BadRequest(413, f"a batch of {len(images)} images, over the limit of {max_batch}")
            if batch and not images:
                return JSONResponse({"results": []})
            try:
                answers = await run_in_threadpool(reader.read_batch if batch else lambda one: [reader.read(one[0])],
                                                  images)
            except ImageError as e:  # read_batch names the image's index
                raise BadRequest(413 if isinstance(e, TooLargeError) else 400, str(e)) from None
        except BadRequest as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        results = [{"text": text, "confidence": confidence} for text, confidence in answers]
        return JSONResponse({"results": results} if batch else results[0])

    async def healthy(request):
        return JSONResponse(health)

    async def http_error(request, error):
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    async def server_error(request, error):  # a bug of ours: one line, and the service goes on
        return JSONResponse({"error": f"internal error: {type(error).__name__}"}, status_code=500)

    return Starlette(routes=[Route("/read", read, methods=["POST"]), Route("/health", healthy, methods=["GET"])],
                     exception_handlers={HTTPException: http_error, Exception: server_error})


def listen(host, port):
    """A listening TCP socket; ReaderError if the address is unusable. Its protocol is named (IPPROTO_TCP, which
    socket.create_server leaves 0) so that asyncio sets TCP_NODELAY on its connections: without it a kept-alive
    connection waits 40 ms on each answer (Nagle's algorithm against the client's delayed ACK)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as e:
        sock.close()
        raise ReaderError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


def serve(model_dir, host="127.0.0.1", port=8080, max_bytes=MAX_BYTES, max_batch=MAX_BATCH, max_pixels=MAX_PIXELS,
          threads=None, announce=print):
    """Loads model_dir's reader and serves it until Ctrl-C; ReaderError if the reader or the address is unusable.
    Port 0 takes a free port; `announce` gets the line naming the address."""
    reader = Reader(model_dir, threads=threads, max_pixels=max_pixels)
    app = create_app(reader, model_dir, max_bytes, max_batch)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    announce(f"serving {model_dir} ({reader.kind}, {len(reader.charset)} characters, {reader.shape[0]}x"
             f"{reader.shape[1]}) on http://{host}:{bound}: POST /read, GET /health")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5))
    server.run(sockets=[sock])


def build_parser():
    """The command line (model_dir from trainer.export --format=onnx, the address, the limits)."""
    parser = command.parser("serve", "Serves a trained reader over HTTP: POST /read, GET /health.")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0: every interface).")
    parser.add_argument("--port", type=int, default=8080, help="Port to listen on (0: a free one, named in the first "
                        "line).")
    parser.add_argument("--max_bytes", type=int, default=MAX_BYTES, help="Largest request body in bytes (larger: 413).")
    parser.add_argument("--max_batch", type=int, default=MAX_BATCH, help="Most images in one request (more: 413).")
    parser.add_argument("--max_pixels", type=int, default=MAX_PIXELS,
                        help="Most pixels in one image, read from its header (more: 413).")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime's threads per model call (default: "
                        "every core).")
    return parser


def main(argv=None):
    """`python -m captcha_break.serve`, and the `captcha-serve` console script."""
    args = build_parser().parse_args(argv)
    with command.exit_on_error():
        serve(args.model_dir, args.host, args.port, args.max_bytes, args.max_batch, args.max_pixels, args.threads,
              announce=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
