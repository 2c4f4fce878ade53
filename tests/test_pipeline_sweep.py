"""pipeline.sweep: a 2x2 grid renders four datasets in one pipeline, once; bad sweep files are named."""
import json
import os

import pytest

from pipeline import sweep

SWEEP = """
dataset:
  base: {train_size: 6, val_size: 2, test_size: 2, seed: 3}
  grid:
    length: [3, 4]
    charset: [digits, upper]
train:
  base: {epochs: 1}
  grid: {model: [cnn]}
"""


def test_grid_renders_every_variant_once(tmp_path):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(SWEEP)
    root = tmp_path / "root"
    index = sweep.run(["--sweep_file=%s" % sweep_file, "--output_root=%s" % root, "--direct_num_workers=1"])
    variants = index["variants"]
    assert len(variants) == 4 and {v["status"] for v in variants} == {"rendered"}
    assert {(v["settings"]["length"], v["settings"]["charset"]) for v in variants} == {
        (3, "digits"), (3, "upper"), (4, "digits"), (4, "upper")}
    for v in variants:
        spec = json.loads((root / v["folder"] / "spec.json").read_text())
        assert v["folder"].endswith("-" + spec["identity"])
        assert spec["label_lengths"] == [v["settings"]["length"]]
        assert spec["charset"] == ("0123456789" if v["settings"]["charset"] == "digits" else
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        assert spec["splits"]["train"]["num_records"] == 6
    assert json.loads((root / "index.json").read_text()) == index
    mtimes = _file_times(root)

    again = sweep.run(["--sweep_file=%s" % sweep_file, "--output_root=%s" % root])
    assert {v["status"] for v in again["variants"]} == {"reused"}
    assert [v["folder"] for v in again["variants"]] == [v["folder"] for v in variants]
    assert _file_times(root) == mtimes, "no dataset file was written again"


def _file_times(root):
    return {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(root) for f in files if f != "index.json" and not f.endswith(".lock")}  # locks hold pids


@pytest.mark.parametrize("text, message", [
    ("dataset: {grid: {lenght: [3]}}", "unknown key 'lenght' in dataset.grid"),
    ("dataset: {base: {colour: red}, grid: {length: [3]}}", "unknown key 'colour' in dataset.base"),
    ("datasets: {grid: {length: [3]}}", "unknown key 'datasets'"),
    ("dataset: {grid: {}}", "dataset.grid is empty"),
    ("dataset: {grid: {length: []}}", "dataset.grid.length must be a non-empty list"),
    ("dataset: {grid: {length: [4, 0]}}", "variant length-0: --length/--min_length must be at least 1"),
    ("dataset: {grid: {train_size: [ten]}}", "train_size"),
    ("dataset: [1, 2]", "needs a 'dataset' section with 'base' and 'grid'"),
    ("[1, 2]", "must hold a mapping"),
])
def test_bad_sweep_file_names_the_key(tmp_path, text, message):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(text)
    with pytest.raises(ValueError, match=message):
        sweep.run(["--sweep_file=%s" % sweep_file, "--output_root=%s" % (tmp_path / "root")])
    assert not (tmp_path / "root").exists()
