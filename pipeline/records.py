"""The `tf.train.Example` schema of a captcha record, and its deterministic serialization."""

import tensorflow as tf

from pipeline.render import Record

# Written into spec.json as "features": the trainer builds its parser from the spec, not from this module.
FEATURES = {
    "image": {"dtype": "string", "shape": [], "description": "encoded image bytes (see image.encoding)"},
    "text": {"dtype": "string", "shape": [], "description": "label text, UTF-8"},
    "label": {"dtype": "int64", "shape": [None], "description": "index of each label character in charset"},
    "length": {"dtype": "int64", "shape": [], "description": "number of characters in the label"},
    "index": {"dtype": "int64", "shape": [], "description": "record index within its split"},
}


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def serialize(record: Record) -> bytes:
    """Example bytes; `deterministic=True` orders the feature map, so bytes don't depend on the process."""
    example = tf.train.Example(features=tf.train.Features(feature={
        "image": _bytes(record.png),
        "text": _bytes(record.text.encode("utf-8")),
        "label": _ints(record.label),
        "length": _ints([len(record.label)]),
        "index": _ints([record.index]),
    }))
    return example.SerializeToString(deterministic=True)
