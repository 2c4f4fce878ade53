"""The serving benchmark (captcha_break.benchmark): the ONNX reader in-process, one image per call and batched,
ddddocr in-process on the same images, and `trainer.serve` on 127.0.0.1 at concurrency 1 and 8, each row bounded
by --count reads and --time_limit seconds. Prints a Markdown table (docs/benchmarks.md holds its figures).

    python -m trainer.serve_benchmark --model_dir=runs/mine --images=../shared/real/swust/2019-12 --count=500
"""
from absl import app, flags

from captcha_break import benchmark
from captcha_break.errors import ReaderError
from trainer.errors import UserError, exit_on_user_error

flags.DEFINE_string("model_dir", None, "Folder holding reader.onnx and reader.json (trainer.export --format=onnx).")
flags.DEFINE_string("images", None, "Folder of captcha images to read.")
flags.DEFINE_integer("count", 500, "Reads per row at most.")
flags.DEFINE_float("time_limit", 60.0, "Seconds per row at most.")
flags.DEFINE_boolean("ddddocr", True, "Also time ddddocr in-process on the same images (pip install -e '.[peers]').")
for name in ("model_dir", "images"):
    flags.mark_flag_as_required(name)
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    with exit_on_user_error():  # Ctrl-C too: one line, exit status 130
        try:
            benchmark.run_benchmark(FLAGS.model_dir, FLAGS.images, FLAGS.count, FLAGS.time_limit, FLAGS.ddddocr)
        except ReaderError as e:
            raise UserError(str(e)) from None


if __name__ == "__main__":
    app.run(main)
