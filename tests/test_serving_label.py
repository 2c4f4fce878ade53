"""Pre-labelling (python -m captcha_break.label): a folder in, a labels CSV least confident first, which the images
source takes as it is, keeping the checked rows."""
import csv
import json
import os
import subprocess
import sys

from serving_fixtures import onnx_runs  # noqa: F401 (fixture)
from test_serving_onnx import split_images
from trainer_fixtures import fixed_dataset, trained, variable_dataset  # noqa: F401 (fixtures)

from captcha_break.reader import Reader
from pipeline.main import run as run_pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _label(*flags):
    return subprocess.run([sys.executable, "-m", "captcha_break.label", *flags], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_prelabels_a_folder_and_ingest_keeps_the_checked_rows(onnx_runs, tmp_path):  # noqa: F811
    model_dir, data_dir = onnx_runs["cnn"]
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i, (encoded, _) in enumerate(split_images(data_dir, "train")[:24]):
        (folder / f"{i:03d}.png").write_bytes(encoded)
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not an image file by its name: not listed")
    output = tmp_path / "labels.csv"
    reader = Reader(model_dir)
    confidences = sorted(reader.read(str(folder / f"{i:03d}.png"))[1] for i in range(24))
    threshold = confidences[16]  # the 8 most confident rows pre-checked

    done = _label(f"--model_dir={model_dir}", f"--input={folder}", f"--output={output}",
                  f"--checked_above={threshold}")
    assert done.returncode == 1  # the broken file
    assert done.stderr.strip().splitlines() == [
        f"error: cannot read {folder}/broken.png: not an image Pillow can read",
        "error: 1 of 25 images could not be read"]
    assert done.stdout.startswith(f"read 24 images into {output}: 8 at confidence")
    rows = list(csv.DictReader(open(output)))
    assert list(rows[0]) == ["path", "label", "confidence", "checked"] and len(rows) == 24
    assert [float(r["confidence"]) for r in rows] == sorted(float(r["confidence"]) for r in rows)
    assert [r["checked"] for r in rows] == [""] * 16 + ["1"] * 8
    for row in rows:
        assert row["path"].startswith("unlabelled/")
        assert row["label"] == reader.read(str(tmp_path / row["path"]))[0]

    again = _label(f"--model_dir={model_dir}", f"--input={folder}", f"--output={output}")
    assert again.returncode == 1 and again.stderr.strip() == (
        f"error: --output {output} exists (it may hold corrections): choose another file, or pass --overwrite")

    # a person checks two more rows (correcting one), then the images source reads the file as it is
    rows[0]["checked"], rows[1]["checked"], rows[1]["label"] = "1", "yes", "ABCD"
    with open(output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    run_pipeline([f"--output_dir={tmp_path / 'data'}", "--source=images", f"--input={output}",
                  "--charset=0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", "--direct_num_workers=1"])
    spec = json.loads((tmp_path / "data" / "spec.json").read_text())
    assert sum(split["num_records"] for split in spec["splits"].values()) == 10  # 8 pre-checked + 2 checked


def test_bad_input_is_one_error_line(onnx_runs, tmp_path):  # noqa: F811
    model_dir, _ = onnx_runs["cnn"]
    cases = [([f"--model_dir={model_dir}", f"--input={tmp_path / 'none'}", f"--output={tmp_path / 'l.csv'}"],
              f"error: --input {tmp_path / 'none'} does not exist"),
             ([f"--model_dir={model_dir}", f"--input={tmp_path}", f"--output={tmp_path / 'l.csv'}"],
              f"error: --input {tmp_path} holds no image files"),
             ([f"--model_dir={tmp_path}", f"--input={tmp_path}", f"--output={tmp_path / 'l.csv'}"],
              f"error: {tmp_path}/reader.json not found")]
    for flags, message in cases:
        done = _label(*flags)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.strip().startswith(message), done.stderr
    assert not (tmp_path / "l.csv").exists()
