"""Pre-labelling: a folder of unlabelled captchas in, a labels CSV out that the pipeline's images source takes as it
is, least confident first, so that a person corrects the few rows that need it.

    python -m captcha_break.label --model_dir=runs/mine --input=unlabelled/ --output=labels.csv --checked_above=0.9
    read 1391 images into labels.csv: 1203 at confidence 0.9 or more marked checked, 188 left to check (its first rows)

    path,label,confidence,checked
    unlabelled/03dt.jpg,03dt,0.214,
    ...
    unlabelled/00hb.jpg,00hb,0.9987,1

Correct the label of each row you check and put 1 in its `checked` column (delete a row you cannot read); then
`python -m pipeline.main --source=images --input=labels.csv ...` keeps exactly the checked rows (a labels file with
a `checked` column; without one every row is kept). Paths are relative to the CSV's folder, as the images source
reads them. An image that cannot be read is an `error:` line on stderr, the others are labelled, and the exit status
is 1; a bad argument, a model_dir without reader.onnx or an existing --output is one `error: ...` line and exit
status 1.
"""
import csv
import io
import os
import stat
import sys
import tempfile

import numpy as np

from captcha_break import command
from captcha_break.errors import ImageError, ReaderError
from captcha_break.reader import Reader

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")  # pipeline/ingest.py's
HEADER = ("path", "label", "confidence", "checked")
BATCH = 64


def list_images(folder):
    """Sorted paths of the image files (by suffix) in `folder`, hidden files left out; ReaderError if it is not a
    folder or holds none."""
    if not os.path.isdir(folder):
        raise ReaderError(f"--input {folder} " + ("is not a folder" if os.path.exists(folder) else "does not exist"))
    paths = sorted(entry.path for entry in os.scandir(folder)
                   if not entry.name.startswith(".") and entry.name.lower().endswith(IMAGE_SUFFIXES))
    if not paths:
        raise ReaderError(f"--input {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def predict(reader, paths, on_error=None):
    """[(path, text, confidence)] of the images `reader` can read, in batches of BATCH; on_error(message) for each
    that it cannot."""
    rows = []
    for start in range(0, len(paths), BATCH):
        batch, pixels = [], []
        for path in paths[start:start + BATCH]:
            try:
                pixels.append(reader.pixels(path))
                batch.append(path)
            except ImageError as e:
                if on_error:
                    on_error(str(e))
        if batch:
            answers = reader.read_pixels(np.stack(pixels))
            rows.extend((path, text, confidence) for path, (text, confidence) in zip(batch, answers))
    return rows


def to_csv(rows, output, checked_above=None):
    """The CSV text of `rows` [(path, label, confidence)], least confident first, paths relative to `output`'s
    folder; rows at confidence checked_above or more marked checked (1)."""
    folder = os.path.dirname(os.path.abspath(output))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for path, label, confidence in sorted(rows, key=lambda row: (row[2], row[0])):
        checked = "1" if checked_above is not None and confidence >= checked_above else ""
        writer.writerow((os.path.relpath(os.path.abspath(path), folder), label, f"{confidence:.6g}", checked))
    return out.getvalue()


def label_folder(reader, folder, output, checked_above=None, overwrite=False, on_error=None):
    """Writes `output` (the module docstring's CSV) for the images in `folder`; returns (rows written, rows marked
    checked, images that could not be read). ReaderError if `output` exists (a person's corrections) unless
    `overwrite`."""
    if os.path.exists(output) and not overwrite:
        raise ReaderError(f"--output {output} exists (it may hold corrections): choose another file, or pass "
                          "--overwrite")
    if os.path.exists(output) and not stat.S_ISREG(os.stat(output).st_mode):
        raise ReaderError(f"--output {output} is not a regular file")
    if checked_above is not None and not 0 <= checked_above <= 1:
        raise ReaderError(f"--checked_above {checked_above} is not a confidence between 0 and 1")
    paths = list_images(folder)
    failed = []
    rows = predict(reader, paths, lambda message: (failed.append(message), on_error and on_error(message)))
    text = to_csv(rows, output, checked_above)
    directory = os.path.dirname(os.path.abspath(output))
    handle, temporary = tempfile.mkstemp(prefix=".incomplete-", suffix=".csv", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, output)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    checked = sum(checked_above is not None and confidence >= checked_above for _, _, confidence in rows)
    return len(rows), checked, len(failed)


def build_parser():
    """The command line: model_dir (trainer.export --format=onnx), the folder in, the CSV out."""
    parser = command.parser("label", "Pre-labels a folder of unlabelled captchas into a labels CSV.")
    parser.add_argument("--input", required=True, help="Folder of unlabelled captcha images.")
    parser.add_argument("--output", required=True,
                        help="Labels CSV to write: path,label,confidence,checked, least confident first.")
    parser.add_argument("--checked_above", type=float, default=None,
                        help="Mark rows at this confidence or more checked (kept without review); default: none, "
                        "every row is for a person to check.")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace an existing --output (and any corrections in it).")
    return parser


def main(argv=None):
    """`python -m captcha_break.label`, and the `captcha-label` console script."""
    args = build_parser().parse_args(argv)
    with command.exit_on_error():  # Ctrl-C too: one line, exit status 130, and no half-written --output
        written, checked, failed = label_folder(
            Reader(args.model_dir), args.input, args.output, args.checked_above, args.overwrite,
            on_error=lambda message: print(f"error: {message}", file=sys.stderr, flush=True))
    if args.checked_above is None:
        print(f"read {written} images into {args.output}: every row left to check (least confident first)")
    else:
        print(f"read {written} images into {args.output}: {checked} at confidence {args.checked_above:g} or more "
              f"marked checked, {written - checked} left to check (its first rows)")
    if failed:
        raise SystemExit(f"error: {failed} of {written + failed} images could not be read")


if __name__ == "__main__":
    main()
