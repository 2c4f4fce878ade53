"""Reads captcha images with a trained model: one `path<TAB>text<TAB>confidence` line per image.

    python -m trainer.predict --model_dir=runs/ctc a.png b.jpg
    a.png	7K2Q	0.9312
    b.jpg	X0O4	0.4410

A missing or unreadable image is reported on stderr; the others are still read, and the exit status is 1.
"""
import sys

from absl import app, flags

from trainer import command, serving
from trainer.errors import exit_on_user_error

flags.DEFINE_string("model_dir", None, "Folder written by trainer.main (uses its saved_model/).")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) < 2:
        raise app.UsageError("give one or more image files")
    with exit_on_user_error():
        signature = serving.load_signature(FLAGS.model_dir)
    failed = 0
    for path, text, confidence, error in serving.predict_files(signature, argv[1:]):
        if error:
            failed += 1
            print(f"error: {error}", file=sys.stderr, flush=True)
        else:
            print(f"{path}\t{text}\t{confidence:.4f}", flush=True)
    if failed:
        raise SystemExit(f"error: {failed} of {len(argv) - 1} images could not be read")


run = command.console_script(main)  # the `captcha-predict` console script


if __name__ == "__main__":
    run()
