"""A dataset's spec.json, the only contract between the pipeline and the trainer, as one checked, read-only object.

    spec = DatasetSpec.load("data/synth")   # UserError naming spec.json and the field if it is not a dataset spec
    spec.charset, spec.image_shape, spec.num_records("train"), spec.shard_paths("train"), spec.parse_spec()
"""
import dataclasses
import hashlib
import json
import os
import re
import types
from collections.abc import Mapping

import tensorflow as tf

from captcha_break.errors import json_object
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


# The tf.train.Example value kinds a spec's "features" may name; shape [] is one value, [null] a list of any length.
DTYPES = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}


@dataclasses.dataclass(frozen=True)
class Feature:
    """One feature of a record's schema: dtype a key of DTYPES, shape () or (None,)."""

    dtype: str
    shape: tuple

    def parse_spec(self):
        """Its tf.io.parse_example spec: one value (FixedLenFeature) or a list of any length (VarLenFeature)."""
        dtype = DTYPES[self.dtype]
        return tf.io.FixedLenFeature([], dtype) if self.shape == () else tf.io.VarLenFeature(dtype)


# The features the trainer reads, as it reads them; the whole schema of a spec.json without "features".
TRAINER_FEATURES = types.MappingProxyType({"image": Feature("string", ()), "label": Feature("int64", (None,))})


@dataclasses.dataclass(frozen=True)
class Shard:
    """A shard's spec entry: its file name in the dataset folder, record count and sha256."""

    file: str
    num_records: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Split:
    """A split's record count and its shards, in spec order."""

    num_records: int
    shards: tuple


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """The checked spec.json of a dataset (or model) folder; `load` builds it, nothing changes it."""

    folder: str
    identity: str
    charset: str
    label_lengths: tuple
    image_shape: tuple  # (height, width, channels)
    splits: Mapping  # split name -> Split, for the splits spec.json lists
    preprocessing: Mapping | None  # how the images source resized (trainer.preprocess); None in older specs
    features: Mapping  # feature name -> Feature: the records' schema
    num_files: int | None  # images source: the image files it read; None for rendered datasets

    @classmethod
    def load(cls, folder):
        """The spec of `folder`; raises UserError naming the file and the field if spec.json is missing, unreadable,
        or lacks or mistypes a field the trainer reads."""
        path = os.path.join(folder, SPEC_FILE)
        if not tf.io.gfile.exists(path):
            raise UserError(f"{path} not found: not a dataset folder, or its pipeline run did not finish")
        with tf.io.gfile.GFile(path, "rb") as f:
            spec = json_object(f.read(), path, FORMAT_VERSION, UserError, reads="this trainer reads")
        _check_fields(spec, path)
        image, preprocessing, features = spec["image"], spec.get("preprocessing"), spec.get("features")
        return cls(
            folder=folder, identity=spec["identity"], charset=spec["charset"],
            label_lengths=tuple(spec["label_lengths"]),
            image_shape=(image["height"], image["width"], image["channels"]),
            splits=types.MappingProxyType({
                name: Split(split["num_records"], tuple(Shard(s["file"], s["num_records"], s["sha256"])
                                                        for s in split["shards"]))
                for name, split in spec["splits"].items() if name in SPLITS}),
            preprocessing=(None if preprocessing is None
                           else types.MappingProxyType({key: preprocessing[key] for key in PREPROCESSING})),
            features=(TRAINER_FEATURES if features is None else types.MappingProxyType(
                {name: Feature(value["dtype"], tuple(value["shape"])) for name, value in features.items()})),
            num_files=spec.get("num_files"))

    @property
    def path(self):
        """The spec.json this was loaded from."""
        return os.path.join(self.folder, SPEC_FILE)

    @property
    def max_label_length(self):
        return max(self.label_lengths)

    def num_records(self, split):
        """Number of records in a split (0 for a split the spec does not list)."""
        return self.splits[split].num_records if split in self.splits else 0

    def shards(self, split):
        """The split's Shards, in spec order."""
        if split not in SPLITS:
            raise UserError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return self.splits[split].shards if split in self.splits else ()

    def shard_paths(self, split):
        """Paths of the split's shards in the spec's folder, in spec order."""
        return [os.path.join(self.folder, shard.file) for shard in self.shards(split)]

    def parse_spec(self, names=tuple(TRAINER_FEATURES)):
        """The tf.io.parse_example spec of the features `names`, from the records' schema; UserError naming the
        first one the schema lacks."""
        for name in names:
            if name not in self.features:
                raise UserError(f"{self.path}: features has no {name!r}")
        return {name: self.features[name].parse_spec() for name in names}

    def verify_shards(self, splits):
        """Checks that each shard of `splits` exists and matches the spec's sha256; raises UserError naming it."""
        for split in splits:
            for shard, path in zip(self.shards(split), self.shard_paths(split)):
                if not tf.io.gfile.exists(path):
                    raise UserError(f"shard {shard.file} listed in {self.path} is missing")
                digest = hashlib.sha256()
                with tf.io.gfile.GFile(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        digest.update(chunk)
                if digest.hexdigest() != shard.sha256:
                    raise UserError(f"shard {shard.file} in {self.folder} is corrupt: sha256 {digest.hexdigest()} "
                                    f"differs from the spec's {shard.sha256}")

    def check_same_task(self, other, where, same_shape=True):
        """Raises UserError unless a model trained on this spec can read `other`'s images (with `same_shape`; a
        model being fine-tuned is rebuilt for the new shape) and labels."""
        if self.charset != other.charset:
            raise UserError(f"charset mismatch: the model in {where} was trained on {self.charset!r}, "
                            f"the dataset has {other.charset!r}")
        if same_shape and self.image_shape != other.image_shape:
            raise UserError(f"image shape mismatch: the model in {where} takes {self.image_shape}, "
                            f"the dataset has {other.image_shape}")

    def check_label_lengths(self, model_name, other, where):
        """Raises UserError unless a per-position (not CTC) model trained on this spec reads `other`'s labels."""
        if sorted(self.label_lengths) != sorted(other.label_lengths):
            raise UserError(f"label length mismatch: the {model_name!r} model in {where} reads labels of length "
                            f"{list(self.label_lengths)}, the dataset has {list(other.label_lengths)}; "
                            "use a dataset of those lengths (only a ctc model reads others)")

    def difference(self, other):
        """None if `other` describes the same dataset, else the first difference, e.g. "label lengths [4], not
        [5]"."""
        for name, mine, theirs in (("charset", self.charset, other.charset),
                                   ("image", self.image_shape, other.image_shape),
                                   ("label lengths", list(self.label_lengths), list(other.label_lengths)),
                                   ("identity", self.identity, other.identity)):
            if mine != theirs:
                return f"{name} {_short(mine)}, not {_short(theirs)}"
        if self.splits != other.splits:
            return "the same identity, other shards"
        return None


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
    if "num_files" in spec:
        field(spec, "num_files", "num_files", "a non-negative integer", _count)
    if "features" in spec:  # specs without them are read by TRAINER_FEATURES
        features = field(spec, "features", "features", "an object", is_a(dict))
        for name in features:
            feature = field(features, name, f"features.{name}", "an object", is_a(dict))
            field(feature, "dtype", f"features.{name}.dtype", "one of " + ", ".join(map(repr, DTYPES)),
                  lambda dtype: isinstance(dtype, str) and dtype in DTYPES)
            field(feature, "shape", f"features.{name}.shape", "[] or [null]", lambda shape: shape in ([], [None]))
        for name, wanted in TRAINER_FEATURES.items():
            feature = field(features, name, f"features.{name}", "an object", is_a(dict))
            got = Feature(feature["dtype"], tuple(feature["shape"]))
            if got != wanted:
                raise UserError(f"{path}: features.{name} must be {_described(wanted)} (the trainer reads it so), "
                                f"got {_described(got)}")
    if "preprocessing" in spec:
        preprocessing = field(spec, "preprocessing", "preprocessing", "an object", is_a(dict))
        for key, choices in PREPROCESSING.items():
            field(preprocessing, key, f"preprocessing.{key}", "one of " + ", ".join(map(repr, choices)),
                  lambda value, choices=choices: value in choices and type(value) in set(map(type, choices)))


def _described(feature):
    """E.g. "int64 of shape [null]", as spec.json writes it."""
    return f"{feature.dtype} of shape {json.dumps(list(feature.shape))}"


def _positive(value):
    return type(value) is int and value > 0  # not a bool: JSON true is no size


def _count(value):
    return type(value) is int and value >= 0


def _short(value):
    """repr(value), cut to fit a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
