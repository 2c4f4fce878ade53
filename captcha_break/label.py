"""Pre-labelling: a folder of unlabelled captchas in, a labels CSV out that the pipeline's images source takes as it
is, least confident first, so that a person corrects the few rows that need it.

    python -m trainer.label --model_dir=runs/mine --input=unlabelled/ --output=labels.csv --checked_above=0.9
    read 1,391 images: 1,203 at confidence 0.9 or more marked checked, 188 left for you to check (the first rows
    of labels.csv); 0 could not be read

    path,label,confidence,checked
    unlabelled/03dt.jpg,03dt,0.214,
    ...
    unlabelled/00hb.jpg,00hb,0.9987,1

Correct the label of each row you check and put 1 in its `checked` column (delete a row you cannot read); then
`python -m pipeline.main --source=images --input=labels.csv ...` keeps exactly the checked rows (a labels file with
a `checked` column; without one every row is kept). Paths are relative to the CSV's folder, as the images source
reads them. An image that cannot be read is named on stderr and left out.
"""
import csv
import io
import os
import stat
import tempfile

import numpy as np

from captcha_break.errors import ImageError, ReaderError

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
