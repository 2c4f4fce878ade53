"""trainer.spec: spec.json as one checked, read-only DatasetSpec, its schema, and its shard checks."""
import dataclasses
import json
import os
import re

import pytest
import tensorflow as tf
from trainer_fixtures import CHARSET, copy_dataset, fixed_dataset, variable_dataset  # noqa: F401 (fixtures)

from trainer import spec as spec_lib
from trainer.errors import UserError
from trainer.spec import DatasetSpec, Feature, Shard, Split


def _raw(folder):
    """The spec.json of `folder` as a plain dict, to change and write back."""
    with open(os.path.join(folder, "spec.json")) as f:
        return json.load(f)


def _write_spec(folder, spec):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "spec.json"), "w") as f:
        json.dump(spec, f)
    return str(folder)


def test_spec_of_a_rendered_dataset_has_typed_fields(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    raw = _raw(fixed_dataset)
    assert spec.folder == fixed_dataset and spec.path == os.path.join(fixed_dataset, "spec.json")
    assert spec.identity == raw["identity"] and re.fullmatch("[0-9a-f]{12}", spec.identity)
    assert spec.charset == CHARSET
    assert spec.image_shape == (64, 128, 3)
    assert spec.label_lengths == (4,) and spec.max_label_length == 4
    assert set(spec.splits) == set(spec_lib.SPLITS)
    assert [spec.num_records(split) for split in spec_lib.SPLITS] == [48, 16, 16]
    train = spec.splits["train"]
    assert isinstance(train, Split) and train.num_records == 48
    assert train.shards == spec.shards("train") == tuple(
        Shard(s["file"], s["num_records"], s["sha256"]) for s in raw["splits"]["train"]["shards"])
    assert [os.path.basename(p) for p in spec.shard_paths("train")] == [
        "train.tfrecord-00000-of-00002", "train.tfrecord-00001-of-00002"]
    assert all(os.path.dirname(p) == fixed_dataset for p in spec.shard_paths("train"))
    assert dict(spec.preprocessing) == raw["preprocessing"]
    assert spec.features["label"] == Feature("int64", (None,)) and spec.features["image"] == Feature("string", ())
    assert set(spec.features) == set(raw["features"])  # the pipeline's whole schema
    assert spec.num_files is None  # rendered, not ingested
    assert spec == DatasetSpec.load(fixed_dataset) and spec.difference(DatasetSpec.load(fixed_dataset)) is None
    spec.verify_shards(spec_lib.SPLITS)


def test_spec_is_read_only(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.charset = "01"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.splits["train"].num_records = 1
    with pytest.raises(TypeError):
        spec.splits["extra"] = spec.splits["train"]
    with pytest.raises(TypeError):
        spec.features["label"] = Feature("string", ())
    with pytest.raises(TypeError):
        spec.preprocessing["resize"] = "pad"


def test_a_split_the_spec_does_not_list_is_empty_and_an_unknown_one_is_refused(fixed_dataset, tmp_path):
    raw = _raw(fixed_dataset)
    del raw["splits"]["test"]
    spec = DatasetSpec.load(_write_spec(tmp_path, raw))
    assert spec.num_records("test") == 0 and spec.shards("test") == () and spec.shard_paths("test") == []
    with pytest.raises(UserError, match="unknown split 'dev'; expected one of train, val, test"):
        spec.shards("dev")


def test_missing_spec_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="spec.json not found"):
        DatasetSpec.load(str(tmp_path))


def test_sha256_mismatch_names_the_shard(fixed_dataset, tmp_path):
    copy = copy_dataset(fixed_dataset, tmp_path / "data")
    with open(os.path.join(copy, "train.tfrecord-00001-of-00002"), "ab") as f:
        f.write(b"x")
    with pytest.raises(UserError, match=r"shard train.tfrecord-00001-of-00002 .* corrupt: sha256"):
        DatasetSpec.load(copy).verify_shards(["train", "val"])
    DatasetSpec.load(copy).verify_shards(["test"])


def test_missing_shard_names_the_shard(fixed_dataset, tmp_path):
    copy = copy_dataset(fixed_dataset, tmp_path / "data")
    os.remove(os.path.join(copy, "val.tfrecord-00000-of-00002"))
    with pytest.raises(UserError, match="shard val.tfrecord-00000-of-00002 listed in .*/spec.json is missing"):
        DatasetSpec.load(copy).verify_shards(["train", "val"])


@pytest.mark.parametrize("split, name", [
    ("train", "../train.tfrecord-00000-of-00002"),
    ("train", "/etc/passwd"),
    ("test", "sub/test.tfrecord-00001-of-00002"),
    ("val", "train.tfrecord-00000-of-00002"),  # a shard of another split
    ("test", "test.tfrecord-1-of-2"),
])
def test_spec_naming_a_file_that_is_not_a_shard_of_its_split_is_refused(fixed_dataset, tmp_path, split, name):
    spec = _raw(fixed_dataset)
    spec["splits"][split]["shards"][1]["file"] = name
    folder = _write_spec(tmp_path, spec)
    with pytest.raises(UserError, match=re.escape(f"{folder}/spec.json: splits.{split}.shards[1].file {name!r} is not "
                                                  f"a shard of split {split}")):
        DatasetSpec.load(folder)


def _delete(spec, field):
    """Deletes a field given as in the error messages, e.g. splits.train.shards[0].file."""
    *parents, last = re.findall(r"[^.\[\]]+", field)
    for key in parents:
        spec = spec[int(key) if key.isdigit() else key]
    del spec[last]


@pytest.mark.parametrize("field", ["image.height", "image", "splits.train.shards[0].file", "splits.val.num_records",
                                   "identity", "charset", "splits.test.shards[1].sha256", "features.label",
                                   "features.image", "features.text.dtype"])
def test_spec_missing_a_field_names_the_file_and_field(fixed_dataset, tmp_path, field):
    spec = _raw(fixed_dataset)
    _delete(spec, field)
    folder = _write_spec(tmp_path, spec)
    with pytest.raises(UserError, match=re.escape(f"{folder}/spec.json: missing field {field}") + "$"):
        DatasetSpec.load(folder)


@pytest.mark.parametrize("field, value, match", [
    ("image", {"height": "64", "width": 128, "channels": 3}, "image.height must be a positive integer, got '64'"),
    ("label_lengths", [4, 0], r"label_lengths must be a non-empty list of positive integers, got \[4, 0\]"),
    ("splits", {"train": []}, r"splits.train must be an object, got \[\]"),
    ("preprocessing", {"resize": "crop", "filter": "bilinear", "antialias": True, "pad_colour": None, "alpha": "white"},
     "preprocessing.resize must be one of 'pad', 'stretch', got 'crop'"),
    ("num_files", -1, "num_files must be a non-negative integer, got -1"),
    ("features", [], r"features must be an object, got \[\]"),
])
def test_spec_with_a_field_of_the_wrong_kind_names_it(fixed_dataset, tmp_path, field, value, match):
    spec = _raw(fixed_dataset)
    spec[field] = value
    with pytest.raises(UserError, match="spec.json: " + match):
        DatasetSpec.load(_write_spec(tmp_path, spec))


@pytest.mark.parametrize("name, feature, match", [
    ("label", {"dtype": "string", "shape": [None]},
     r"features.label must be int64 of shape \[null\] \(the trainer reads it so\), got string of shape \[null\]"),
    ("label", {"dtype": "int64", "shape": []},
     r"features.label must be int64 of shape \[null\] \(the trainer reads it so\), got int64 of shape \[\]"),
    ("image", {"dtype": "int64", "shape": []},
     r"features.image must be string of shape \[\] \(the trainer reads it so\), got int64 of shape \[\]"),
    ("text", {"dtype": "utf8", "shape": []}, "features.text.dtype must be one of 'string', 'int64', 'float32', got "
                                             "'utf8'"),
    ("index", {"dtype": "int64", "shape": [3]}, r"features.index.shape must be \[\] or \[null\], got \[3\]"),
    ("length", "int64", "features.length must be an object, got 'int64'"),
])
def test_spec_whose_schema_lacks_or_mistypes_a_feature_names_it_in_one_line(fixed_dataset, tmp_path, name, feature,
                                                                            match):
    spec = _raw(fixed_dataset)
    spec["features"][name] = feature
    folder = _write_spec(tmp_path, spec)
    with pytest.raises(UserError, match="^" + re.escape(f"{folder}/spec.json: ") + match) as e:
        DatasetSpec.load(folder)
    assert "\n" not in str(e.value)


def test_spec_without_features_reads_the_trainers_schema(fixed_dataset, tmp_path):
    """A spec.json written before the pipeline wrote its schema: the trainer reads image and label as it always did."""
    spec = _raw(fixed_dataset)
    del spec["features"]
    old = DatasetSpec.load(_write_spec(tmp_path, spec))
    assert dict(old.features) == {"image": Feature("string", ()), "label": Feature("int64", (None,))}
    assert old.parse_spec() == DatasetSpec.load(fixed_dataset).parse_spec()
    assert old.difference(DatasetSpec.load(fixed_dataset)) is None  # the same dataset
    with pytest.raises(UserError, match=re.escape(f"{old.path}: features has no 'text'")):
        old.parse_spec(("image", "text"))


def test_parse_spec_follows_the_schema(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    assert spec.parse_spec(("image", "text", "label", "index")) == {
        "image": tf.io.FixedLenFeature([], tf.string), "text": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.VarLenFeature(tf.int64), "index": tf.io.FixedLenFeature([], tf.int64)}
    record = next(iter(tf.data.TFRecordDataset(spec.shard_paths("val"))))
    parsed = tf.io.parse_single_example(record, spec.parse_spec(("text", "label", "length")))
    text = parsed["text"].numpy().decode()
    assert [CHARSET[i] for i in tf.sparse.to_dense(parsed["label"]).numpy()] == list(text)
    assert int(parsed["length"]) == len(text) == 4


def test_spec_whose_counts_disagree_is_refused(fixed_dataset, tmp_path):
    spec = _raw(fixed_dataset)
    spec["splits"]["train"]["num_records"] = 47
    with pytest.raises(UserError, match=r"splits.train.num_records 47 is not the sum of its shards' \(48\)"):
        DatasetSpec.load(_write_spec(tmp_path, spec))


@pytest.mark.parametrize("content, match", [(b"[1, 2]", "must hold a JSON object"),
                                            (b"\xff\xfe{", "is not valid UTF-8 JSON"),
                                            (b'{"format_version": 1', "is not valid UTF-8 JSON")])
def test_spec_that_is_not_a_json_object_is_a_clear_error(tmp_path, content, match):
    (tmp_path / "spec.json").write_bytes(content)
    with pytest.raises(UserError, match=match):
        DatasetSpec.load(str(tmp_path))


def test_model_and_dataset_specs_are_compared_field_by_field(fixed_dataset, variable_dataset, tmp_path):
    fixed, variable = DatasetSpec.load(fixed_dataset), DatasetSpec.load(variable_dataset)
    assert fixed.difference(variable) == "label lengths [4], not [4, 5, 6]"
    fixed.check_same_task(variable, "runs/x")  # same charset and image shape
    with pytest.raises(UserError, match=r"label length mismatch: the 'cnn' model in runs/x reads labels of length "
                                        r"\[4\], the dataset has \[4, 5, 6\]; use a dataset of those lengths"):
        fixed.check_label_lengths("cnn", variable, "runs/x")
    raw = _raw(fixed_dataset)
    raw["image"]["height"] = 32
    smaller = DatasetSpec.load(_write_spec(tmp_path / "small", raw))
    assert fixed.difference(smaller) == "image (64, 128, 3), not (32, 128, 3)"
    with pytest.raises(UserError, match=r"image shape mismatch: the model in runs/x takes \(64, 128, 3\), the "
                                        r"dataset has \(32, 128, 3\)"):
        fixed.check_same_task(smaller, "runs/x")
    fixed.check_same_task(smaller, "runs/x", same_shape=False)
    raw["image"]["height"], raw["charset"] = 64, CHARSET[::-1]
    with pytest.raises(UserError, match="charset mismatch: the model in runs/x was trained on '0123"):
        fixed.check_same_task(DatasetSpec.load(_write_spec(tmp_path / "other", raw)), "runs/x")
    raw["charset"], raw["splits"]["test"]["shards"][0]["sha256"] = CHARSET, "0" * 64
    assert fixed.difference(DatasetSpec.load(_write_spec(tmp_path / "resharded", raw))) == \
        "the same identity, other shards"
