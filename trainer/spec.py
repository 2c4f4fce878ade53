"""Reads and checks a dataset's spec.json, the only contract between the pipeline and the trainer."""
import hashlib
import json
import os
import re

import tensorflow as tf

from trainer.errors import UserError

SPEC_FILE = "spec.json"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
# The names pipeline/shards.py gives shards, "%s.tfrecord-%05d-of-%05d" % (split, shard, num_shards): plain file
# names inside the dataset folder, so a spec.json naming ../x or /etc/x is refused.
SHARD_NAME = re.compile(r"(train|val|test)\.tfrecord-\d{5}-of-\d{5}")
# How the pipeline's images source resized (pipeline/ingest.py); specs written before it recorded this have none.
PREPROCESSING = {"resize": ("pad", "stretch"), "filter": ("bilinear",), "antialias": (True, False),
                 "pad_colour": ("border_median", None), "alpha": ("white",)}


def load_spec(folder):
    """Returns the parsed spec.json of a dataset (or model) folder; raises UserError naming the file and the field
    if it is missing, unreadable, or lacks or mistypes a field the trainer reads."""
    path = os.path.join(folder, SPEC_FILE)
    if not tf.io.gfile.exists(path):
        raise UserError(f"{path} not found: not a dataset folder, or its pipeline run did not finish")
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            spec = json.loads(f.read().decode("utf-8"))
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise UserError(f"{path} is not valid UTF-8 JSON: {e}") from None
    if not isinstance(spec, dict):
        raise UserError(f"{path} must hold a JSON object, got {type(spec).__name__}")
    if spec.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: format_version {spec.get('format_version')!r}, this trainer reads {FORMAT_VERSION}")
    _check_fields(spec, path)
    return spec


def _check_fields(spec, path):
    """Raises UserError naming `path` and the first field the trainer reads that is missing or of the wrong kind."""
    def field(parent, key, name, expected, ok):
        if key not in parent:
            raise UserError(f"{path}: missing field {name}")
        if not ok(parent[key]):
            raise UserError(f"{path}: {name} must be {expected}, got {_short(parent[key])}")
        return parent[key]

    def is_a(kind):
        return lambda value: isinstance(value, kind)

    field(spec, "identity", "identity", "a non-empty string", lambda identity: isinstance(identity, str) and identity)
    field(spec, "charset", "charset", "a non-empty string of distinct characters",
          lambda charset: isinstance(charset, str) and charset and len(set(charset)) == len(charset))
    field(spec, "label_lengths", "label_lengths", "a non-empty list of positive integers",
          lambda lengths: isinstance(lengths, list) and lengths and all(map(_positive, lengths)))
    image = field(spec, "image", "image", "an object", is_a(dict))
    for key in ("height", "width"):
        field(image, key, f"image.{key}", "a positive integer", _positive)
    field(image, "channels", "image.channels", "1, 3 or 4",
          lambda channels: _positive(channels) and channels in (1, 3, 4))
    splits = field(spec, "splits", "splits", "an object", is_a(dict))
    for split in (s for s in SPLITS if s in splits):  # a split the spec does not list has no records
        name = f"splits.{split}"
        field(splits, split, name, "an object", is_a(dict))
        count = field(splits[split], "num_records", f"{name}.num_records", "a non-negative integer", _count)
        shards = field(splits[split], "shards", f"{name}.shards", "a list", is_a(list))
        for i, shard in enumerate(shards):
            where = f"{name}.shards[{i}]"
            if not isinstance(shard, dict):
                raise UserError(f"{path}: {where} must be an object, got {_short(shard)}")
            file = field(shard, "file", f"{where}.file", "a string", is_a(str))
            if not SHARD_NAME.fullmatch(file) or not file.startswith(f"{split}."):
                raise UserError(f"{path}: {where}.file {file!r} is not a shard of split {split} (a file named "
                                f"{split}.tfrecord-NNNNN-of-NNNNN in the dataset folder)")
            field(shard, "num_records", f"{where}.num_records", "a non-negative integer", _count)
            field(shard, "sha256", f"{where}.sha256", "a string", is_a(str))
        total = sum(shard["num_records"] for shard in shards)
        if total != count:
            raise UserError(f"{path}: {name}.num_records {count} is not the sum of its shards' ({total})")
    if "preprocessing" in spec:
        preprocessing = field(spec, "preprocessing", "preprocessing", "an object", is_a(dict))
        for key, choices in PREPROCESSING.items():
            field(preprocessing, key, f"preprocessing.{key}", "one of " + ", ".join(map(repr, choices)),
                  lambda value, choices=choices: value in choices and type(value) in set(map(type, choices)))


def _positive(value):
    return type(value) is int and value > 0  # not a bool: JSON true is no size


def _count(value):
    return type(value) is int and value >= 0


def _short(value):
    """repr(value), cut to fit a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def image_shape(spec):
    """(height, width, channels) of the dataset's images."""
    image = spec["image"]
    return (image["height"], image["width"], image["channels"])


def num_records(spec, split):
    """Number of records in a split (0 for a split the spec does not list)."""
    return spec["splits"].get(split, {}).get("num_records", 0)


def shards(spec, split):
    """The spec entries ({file, num_records, sha256, ...}) of the split's shards, in spec order."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return spec["splits"].get(split, {}).get("shards", [])


def shard_paths(spec, data_dir, split):
    """Paths of the split's shards, in spec order."""
    return [os.path.join(data_dir, shard["file"]) for shard in shards(spec, split)]


def verify_shards(spec, data_dir, splits):
    """Checks that each shard of `splits` exists and matches the spec's size and sha256; raises UserError naming it."""
    for split in splits:
        for shard in shards(spec, split):
            path = os.path.join(data_dir, shard["file"])
            if not tf.io.gfile.exists(path):
                raise UserError(f"shard {shard['file']} listed in {data_dir}/spec.json is missing")
            digest = hashlib.sha256()
            with tf.io.gfile.GFile(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            if digest.hexdigest() != shard["sha256"]:
                raise UserError(f"shard {shard['file']} in {data_dir} is corrupt: sha256 {digest.hexdigest()} "
                                f"differs from the spec's {shard['sha256']}")


def check_same_task(model_spec, data_spec, where, same_shape=True):
    """Raises UserError unless a model trained on `model_spec` can read `data_spec`'s images (with `same_shape`; a
    model being fine-tuned is rebuilt for the new shape) and labels."""
    if model_spec["charset"] != data_spec["charset"]:
        raise UserError(f"charset mismatch: the model in {where} was trained on {model_spec['charset']!r}, "
                        f"the dataset has {data_spec['charset']!r}")
    if same_shape and image_shape(model_spec) != image_shape(data_spec):
        raise UserError(f"image shape mismatch: the model in {where} takes {image_shape(model_spec)}, "
                        f"the dataset has {image_shape(data_spec)}")


def check_label_lengths(model_name, model_spec, data_spec, where):
    """Raises UserError unless a per-position (not CTC) model trained on `model_spec` reads `data_spec`'s labels."""
    if sorted(model_spec["label_lengths"]) != sorted(data_spec["label_lengths"]):
        raise UserError(f"label length mismatch: the {model_name!r} model in {where} reads labels of length "
                        f"{model_spec['label_lengths']}, the dataset has {data_spec['label_lengths']}; "
                        "use a dataset of those lengths (only a ctc model reads others)")


def dataset_difference(old, new):
    """None if two specs describe the same dataset, else the first difference, e.g. "label lengths [4], not [5]"."""
    for name, key in (("charset", "charset"), ("image", "image"), ("label lengths", "label_lengths"),
                      ("identity", "identity")):
        if old[key] != new[key]:
            return f"{name} {_short(old[key])}, not {_short(new[key])}"
    if old["splits"] != new["splits"]:
        return "the same identity, other shards"
    return None
