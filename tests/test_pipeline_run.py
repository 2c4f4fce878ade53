"""End-to-end runs of `pipeline.main.run` on a few dozen records: contents, determinism, bad input."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from pipeline import main as pipeline_main
from pipeline import storage

ARGS = ["--train_size=40", "--val_size=12", "--test_size=12", "--num_shards=2", "--seed=5"]


def render(folder, *extra):
    return pipeline_main.run(["--output_dir=%s" % folder, *ARGS, *extra])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dataset")
    render(folder, "--direct_num_workers=2")
    return folder


def shard_bytes(folder):
    return {f: (folder / f).read_bytes() for f in sorted(os.listdir(folder)) if ".tfrecord-" in f}


def test_shards_read_back_as_the_spec_says(dataset):
    spec = json.loads((dataset / "spec.json").read_text())
    assert spec["charset"] == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" and spec["label_lengths"] == [4]
    assert spec["image"] == {"height": 64, "width": 128, "channels": 3, "encoding": "png"}
    assert spec["versions"]["captcha"] == "0.7.0" and spec["seed"] == 5
    assert spec["preprocessing"] == {"resize": "stretch", "filter": "bilinear", "antialias": True,
                                     "pad_colour": None, "alpha": "white"}, "rendered at the exact size"
    features = {"image": tf.io.FixedLenFeature([], tf.string), "text": tf.io.FixedLenFeature([], tf.string),
                "label": tf.io.VarLenFeature(tf.int64), "length": tf.io.FixedLenFeature([], tf.int64),
                "index": tf.io.FixedLenFeature([], tf.int64)}
    images = set()
    for split, expected in (("train", 40), ("val", 12), ("test", 12)):
        info = spec["splits"][split]
        assert info["num_records"] == expected and len(info["shards"]) == 2
        indices = []
        for shard in info["shards"]:
            data = (dataset / shard["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == shard["sha256"] and len(data) == shard["num_bytes"]
            count = 0
            for raw in tf.data.TFRecordDataset(str(dataset / shard["file"])):
                example = tf.io.parse_single_example(raw, features)
                image = tf.io.decode_png(example["image"])
                assert image.shape == (64, 128, 3)
                text = example["text"].numpy().decode()
                label = tf.sparse.to_dense(example["label"]).numpy().tolist()
                assert len(text) == 4 == example["length"] and all(c in spec["charset"] for c in text)
                assert [spec["charset"][i] for i in label] == list(text)
                indices.append(int(example["index"]))
                images.add(example["image"].numpy())
                count += 1
            assert count == shard["num_records"]
        assert indices == list(range(expected)), "each shard is sorted and holds a contiguous range"
    assert len(images) == 64, "no image is shared between or within splits"


def test_same_seed_gives_identical_bytes_whatever_the_workers(dataset, tmp_path):
    render(tmp_path / "one", "--direct_num_workers=1")
    render(tmp_path / "threads", "--direct_running_mode=multi_threading", "--direct_num_workers=2")
    expected = shard_bytes(dataset)
    assert shard_bytes(tmp_path / "one") == expected
    assert shard_bytes(tmp_path / "threads") == expected
    specs = [json.loads((f / "spec.json").read_text()) for f in (dataset, tmp_path / "one")]
    assert specs[0]["identity"] == specs[1]["identity"]


def test_other_seed_gives_other_bytes(dataset, tmp_path):
    spec = pipeline_main.run(["--output_dir=%s" % tmp_path, *ARGS, "--seed=6", "--direct_num_workers=1"])
    other = shard_bytes(tmp_path)
    assert other.keys() == shard_bytes(dataset).keys()
    assert all(other[f] != data for f, data in shard_bytes(dataset).items())
    assert spec["identity"] != json.loads((dataset / "spec.json").read_text())["identity"]


def test_same_settings_reuse_the_dataset(dataset):
    def times():  # the lock file holds the pid of each run
        return {f: os.stat(dataset / f).st_mtime_ns for f in os.listdir(dataset) if f != storage.LOCK_FILE}
    before = times()
    spec = render(dataset)
    assert spec == json.loads((dataset / "spec.json").read_text())
    assert before == times()


def test_other_settings_need_overwrite_and_lose_nothing_without_it(dataset, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(dataset, folder)
    before = shard_bytes(folder), (folder / "spec.json").read_bytes()
    with pytest.raises(ValueError, match="already holds a complete dataset with other settings.*--overwrite"):
        pipeline_main.run(["--output_dir=%s" % folder, "--train_size=10", "--val_size=0", "--test_size=0"])
    assert (shard_bytes(folder), (folder / "spec.json").read_bytes()) == before

    spec = pipeline_main.run(["--output_dir=%s" % folder, "--train_size=10", "--val_size=0",
                              "--test_size=0", "--overwrite", "--direct_num_workers=1"])
    assert spec["splits"]["train"]["num_records"] == 10
    assert sorted(shard_bytes(folder)) == ["train.tfrecord-00000-of-00001"], "old shards are removed"


def _font_that_is_not_a_font(tmp_path):
    path = tmp_path / "broken.ttf"
    path.write_text("not a font")
    return str(path)


@pytest.mark.parametrize("args, message", [
    (["--charset="], "empty"),
    (["--charset=AAB"], "repeats"),
    (["--length=0"], "at least 1"),
    (["--train_size=-1"], "--train_size must be >= 0"),
    (["--test_size=-5"], "--test_size must be >= 0"),
    (["--width=20"], "too small for 4 characters"),
    (["--height=8"], "--height"),
    (["--fonts=/no/such/font.ttf"], "cannot be loaded"),
    ("broken-font", "cannot be loaded"),
    ("unwritable", "cannot be written"),
])
def test_bad_input_fails_before_any_work(tmp_path, args, message):
    output = tmp_path / "out"
    if args == "broken-font":
        args = ["--fonts=%s" % _font_that_is_not_a_font(tmp_path)]
    elif args == "unwritable":
        (tmp_path / "a-file").write_text("")
        output = tmp_path / "a-file" / "out"
        args = []
    with pytest.raises(ValueError, match=message):
        pipeline_main.run(["--output_dir=%s" % output, *args])
    assert not output.exists() or not any(f.name.endswith(".json") or ".tfrecord" in f.name
                                          for f in output.iterdir())


def test_command_line_error_is_one_line_and_non_zero(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline.main", "--output_dir=%s" % tmp_path,
                             "--charset=ABCA"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --charset repeats characters 'A'; each character may appear once")
    assert os.listdir(tmp_path) == []
