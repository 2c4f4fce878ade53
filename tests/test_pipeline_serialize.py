"""Record bytes without TensorFlow: pinned sha256 of shards rendered with tf.train.Example before.

    .venv/bin/python -m pytest tests/test_pipeline_serialize.py -q
"""
import hashlib
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from pipeline import main as pipeline_main
from pipeline import records
from pipeline.render import Record

# Rendered on 2026-11-27 with records serialized by tf.train.Example.SerializeToString(deterministic=True).
PINNED = {
    "train.tfrecord-00000-of-00002": "1ed6cefda18a41d854f04eb8d290712de8411ec032e45496ecf6fc3847ec1fe2",
    "train.tfrecord-00001-of-00002": "9adc75c0d5786325aa90edcc968960f9ed976d1a725b7de89df09950c380a107",
    "val.tfrecord-00000-of-00002": "f710c2d211c61c8d8963a368ccb97e469cd0ade9231efd1d417223f0e03a3e42",
    "val.tfrecord-00001-of-00002": "bf7f2f36866f8cbc751176f36dce9f3961632f8fcea042814de0092852556faa",
    "test.tfrecord-00000-of-00002": "e5843ff3f294f37d178ac5e6167af58a749f90027d1b6e6d97094a2b550c5c54",
    "test.tfrecord-00001-of-00002": "6d3da0bdc0b361a29bc1db5a899e5dac221d2fe93fe4a30bfd96333f0b7e116f",
}


def test_shards_match_the_pinned_sha256(tmp_path):
    pipeline_main.run(["--output_dir=%s" % tmp_path, "--train_size=24", "--val_size=8", "--test_size=8",
                       "--num_shards=2", "--seed=5", "--min_length=3", "--max_length=6",
                       "--direct_num_workers=1", "--direct_running_mode=in_memory"])
    written = {f: hashlib.sha256((tmp_path / f).read_bytes()).hexdigest()
               for f in os.listdir(tmp_path) if ".tfrecord-" in f}
    assert written == PINNED


@pytest.mark.parametrize("record", [
    Record(3, "AB", (10, 11), b"\x89PNG"),
    Record(2 ** 40, "\u00e9\u00df", (), b""),  # non-ASCII text, an empty label, a large index
    Record(0, "Z", (35,), bytes(range(256)) * 4),
])
def test_protobuf_serializer_matches_tf_train_example(record):
    def feature(**kind):
        return tf.train.Feature(**kind)
    example = tf.train.Example(features=tf.train.Features(feature={
        "image": feature(bytes_list=tf.train.BytesList(value=[record.png])),
        "text": feature(bytes_list=tf.train.BytesList(value=[record.text.encode("utf-8")])),
        "label": feature(int64_list=tf.train.Int64List(value=list(record.label))),
        "length": feature(int64_list=tf.train.Int64List(value=[len(record.label)])),
        "index": feature(int64_list=tf.train.Int64List(value=[record.index])),
    }))
    assert records.serialize(record) == example.SerializeToString(deterministic=True)
    assert tf.train.Example.FromString(records.serialize(record)) == example


def test_the_pipeline_never_imports_tensorflow():
    code = ("import sys, pipeline.main, pipeline.sweep, pipeline.benchmark; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
