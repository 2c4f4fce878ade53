"""Serves a trained reader over HTTP without TensorFlow: model_dir/reader.onnx (trainer.export --format=onnx) behind
`POST /read` and `GET /health` (captcha_break.serve: the request formats, the answers, the limits).

    python -m trainer.serve --model_dir=runs/ctc --port=8080
    serving runs/ctc (ctc, 36 characters, 64x128) on http://127.0.0.1:8080: POST /read, GET /health
    curl --data-binary @a.png localhost:8080/read
    {"text":"7K2Q","confidence":0.9312}

A model_dir without reader.onnx, or an address in use, is one `error: ...` line and exit status 1.
"""
from absl import app, flags

from captcha_break import serve
from captcha_break.errors import ReaderError

flags.DEFINE_string("model_dir", None, "Folder holding reader.onnx and reader.json (trainer.export --format=onnx).")
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: every interface).")
flags.DEFINE_integer("port", 8080, "Port to listen on (0: a free one, named in the first line).")
flags.DEFINE_integer("max_bytes", serve.MAX_BYTES, "Largest request body in bytes (larger: 413).")
flags.DEFINE_integer("max_batch", serve.MAX_BATCH, "Most images in one request (more: 413).")
flags.DEFINE_integer("max_pixels", serve.MAX_PIXELS, "Most pixels in one image, read from its header (more: 413).")
flags.DEFINE_integer("threads", None, "onnxruntime's threads per model call (default: every core).")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        serve.serve(FLAGS.model_dir, FLAGS.host, FLAGS.port, FLAGS.max_bytes, FLAGS.max_batch, FLAGS.max_pixels,
                    FLAGS.threads, announce=lambda line: print(line, flush=True))
    except ReaderError as e:
        raise SystemExit(f"error: {e}") from None


def run():
    """The `captcha-serve` console script: `python -m trainer.serve` under another name."""
    app.run(main)


if __name__ == "__main__":
    run()
