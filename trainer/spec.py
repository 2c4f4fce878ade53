"""Reads and checks a dataset's spec.json, the only contract between the pipeline and the trainer."""
import contextlib
import hashlib
import json
import os

import tensorflow as tf

from trainer.errors import UserError

SPEC_FILE = "spec.json"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


def load_spec(folder):
    """Returns the parsed spec.json of a dataset (or model) folder; raises UserError if missing or malformed."""
    path = os.path.join(folder, SPEC_FILE)
    if not tf.io.gfile.exists(path):
        raise UserError(f"{path} not found: not a dataset folder, or its pipeline run did not finish")
    try:
        with tf.io.gfile.GFile(path) as f:
            spec = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON: {e}") from e
    if spec.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: format_version {spec.get('format_version')!r}, this trainer reads {FORMAT_VERSION}")
    for key in ("charset", "label_lengths", "image", "splits"):
        if key not in spec:
            raise UserError(f"{path}: missing key {key!r}")
    if not spec["charset"] or len(set(spec["charset"])) != len(spec["charset"]):
        raise UserError(f"{path}: charset must be non-empty with distinct characters, got {spec['charset']!r}")
    if not spec["label_lengths"] or min(spec["label_lengths"]) < 1:
        raise UserError(f"{path}: label_lengths must be positive, got {spec['label_lengths']!r}")
    return spec


def image_shape(spec):
    """(height, width, channels) of the dataset's images."""
    image = spec["image"]
    return (image["height"], image["width"], image["channels"])


def num_records(spec, split):
    """Number of records in a split (0 for a split the spec does not list)."""
    return spec["splits"].get(split, {}).get("num_records", 0)


def shard_paths(spec, data_dir, split):
    """Paths of the split's shards, in spec order."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return [os.path.join(data_dir, s["file"]) for s in spec["splits"].get(split, {}).get("shards", [])]


def verify_shards(spec, data_dir, splits):
    """Checks that each shard of `splits` exists and matches the spec's size and sha256; raises UserError naming it."""
    for split in splits:
        for shard in spec["splits"].get(split, {}).get("shards", []):
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


def find_corrupt_shard(spec, data_dir, splits):
    """Reads every record of `splits` and returns the first shard file that fails to read, or None."""
    for split in splits:
        for path in shard_paths(spec, data_dir, split):
            try:
                for _ in tf.data.TFRecordDataset(path):
                    pass
            except (tf.errors.DataLossError, tf.errors.NotFoundError):
                return os.path.basename(path)
    return None


@contextlib.contextmanager
def naming_bad_shards(spec, data_dir, splits):
    """Turns a corrupt or missing shard met while reading `splits` into a UserError naming the shard."""
    try:
        yield
    except (tf.errors.DataLossError, tf.errors.NotFoundError) as e:
        shard = find_corrupt_shard(spec, data_dir, splits)
        raise UserError(f"cannot read shard {shard} of {data_dir}: {e.message}") from e


def check_same_task(model_spec, data_spec, where):
    """Raises UserError unless a model trained on `model_spec` can read `data_spec`'s images and labels."""
    if model_spec["charset"] != data_spec["charset"]:
        raise UserError(f"charset mismatch: the model in {where} was trained on {model_spec['charset']!r}, "
                        f"the dataset has {data_spec['charset']!r}")
    if image_shape(model_spec) != image_shape(data_spec):
        raise UserError(f"image shape mismatch: the model in {where} takes {image_shape(model_spec)}, "
                        f"the dataset has {image_shape(data_spec)}")
