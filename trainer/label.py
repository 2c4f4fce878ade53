"""Pre-labels a folder of unlabelled captchas with a trained reader (its reader.onnx; no TensorFlow): a labels CSV,
least confident first, that `pipeline.main --source=images --input=labels.csv` takes as it is (captcha_break.label).

    python -m trainer.label --model_dir=runs/mine --input=unlabelled/ --output=labels.csv --checked_above=0.9
    read 1391 images into labels.csv: 1203 at confidence 0.9 or more marked checked, 188 left to check (its first rows)

Check the unchecked rows (correct the label, put 1 in `checked`); the images source keeps only checked rows. A bad
flag, a model_dir without reader.onnx or an existing --output is one `error: ...` line and exit status 1; an image
that cannot be read is an `error:` line on stderr, the others are labelled, and the exit status is 1.
"""
import sys

from absl import app, flags

from captcha_break import label
from captcha_break.errors import ReaderError
from captcha_break.reader import Reader
from trainer.errors import UserError, exit_on_user_error

flags.DEFINE_string("model_dir", None, "Folder holding reader.onnx and reader.json (trainer.export --format=onnx).")
flags.DEFINE_string("input", None, "Folder of unlabelled captcha images.")
flags.DEFINE_string("output", None, "Labels CSV to write: path,label,confidence,checked, least confident first.")
flags.DEFINE_float("checked_above", None, "Mark rows at this confidence or more checked (kept without review); "
                   "default: none, every row is for a person to check.")
flags.DEFINE_boolean("overwrite", False, "Replace an existing --output (and any corrections in it).")
for name in ("model_dir", "input", "output"):
    flags.mark_flag_as_required(name)
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    with exit_on_user_error():  # Ctrl-C too: one line, exit status 130, and no half-written --output
        try:
            reader = Reader(FLAGS.model_dir)
            written, checked, failed = label.label_folder(
                reader, FLAGS.input, FLAGS.output, FLAGS.checked_above, FLAGS.overwrite,
                on_error=lambda message: print(f"error: {message}", file=sys.stderr, flush=True))
        except ReaderError as e:
            raise UserError(str(e)) from None
    if FLAGS.checked_above is None:
        print(f"read {written} images into {FLAGS.output}: every row left to check (least confident first)")
    else:
        print(f"read {written} images into {FLAGS.output}: {checked} at confidence {FLAGS.checked_above:g} or more "
              f"marked checked, {written - checked} left to check (its first rows)")
    if failed:
        raise SystemExit(f"error: {failed} of {written + failed} images could not be read")


def run():
    """The `captcha-label` console script: `python -m trainer.label` under another name."""
    app.run(main)


if __name__ == "__main__":
    run()
