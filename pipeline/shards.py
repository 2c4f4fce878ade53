"""Beam transforms that render records and write them to shards in an order no runner can change.

Record i of a split goes to the shard that holds its index range (as tensorflow_datasets' Beam writer
assigns by key), and each shard is rendered in index order by one task that also writes it, so the bytes
of every shard depend only on the settings, never on bundles, workers or the runner.
"""

import dataclasses
import hashlib
import io
import logging
import math
import re
from typing import Dict, List

import apache_beam as beam
from apache_beam.io.tfrecordio import _TFRecordUtil  # the framing WriteToTFRecord itself writes
from apache_beam.metrics import Metrics

from pipeline import records, storage
from pipeline.render import CaptchaRenderer, RenderSettings

SPLITS = ("train", "val", "test")
MIN_RECORDS_PER_SHARD = 1000
PARALLEL_SHARDS = 16  # a split of 16,000+ records gets at least this many shards, to spread over workers
SHARD_NAME = re.compile(r"(%s)\.tfrecord-[0-9]{5}-of-[0-9]{5}" % "|".join(SPLITS))


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return "%s.tfrecord-%05d-of-%05d" % (split, shard, num_shards)


def is_shard_name(name) -> bool:
    """True for a plain file name that `shard_name` gives: never a path, `..` or another file's name.
    Files of such names, and their temporary files, are the only ones the pipeline ever deletes."""
    return isinstance(name, str) and SHARD_NAME.fullmatch(name) is not None


def shard_range(num_records: int, num_shards: int, shard: int) -> range:
    """The record indices that shard `shard` of `num_shards` holds: contiguous, sizes differ by <= 1."""
    return range(shard * num_records // num_shards, (shard + 1) * num_records // num_shards)


def default_num_shards(num_records: int, record_bytes: float, shard_bytes: float) -> int:
    """Enough shards for `shard_bytes` each, and at least min(PARALLEL_SHARDS, records / 1000) so that
    workers share the rendering (one shard is one worker's task)."""
    if not num_records:
        return 0
    by_size = math.ceil(num_records * record_bytes / shard_bytes)
    return min(num_records, max(by_size, min(PARALLEL_SHARDS, num_records // MIN_RECORDS_PER_SHARD), 1))


@dataclasses.dataclass(frozen=True)
class Task:
    """One shard: the records [start, stop) of a split, rendered and written by one worker call."""
    split: str
    shard: int
    num_shards: int
    start: int
    stop: int


def plan_tasks(sizes: Dict[str, int], num_shards: Dict[str, int]) -> List[Task]:
    """One task per shard; larger shards first, so the last tasks to start are short."""
    tasks = []
    for split in SPLITS:
        for shard in range(num_shards[split]):
            indices = shard_range(sizes[split], num_shards[split], shard)
            tasks.append(Task(split, shard, num_shards[split], indices.start, indices.stop))
    return sorted(tasks, key=lambda t: t.start - t.stop)


def write_shard(output_dir: str, split: str, shard: int, num_shards: int, values) -> dict:
    """Writes serialized records, in the given order, to one shard file; returns its spec entry."""
    buffer = io.BytesIO()
    for value in values:
        _TFRecordUtil.write_record(buffer, value)
    data = buffer.getvalue()
    name = shard_name(split, shard, num_shards)
    storage.write_atomic(storage.join(output_dir, name), data)
    Metrics.counter("captcha", "bytes_written").inc(len(data))
    Metrics.counter("captcha", "shards_written").inc()
    logging.info("wrote %s: %d records, %.1f MB", name, len(values), len(data) / 1e6)
    return {"split": split, "file": name, "num_records": len(values), "num_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


class RenderShard(beam.DoFn):
    """Task -> the shard's spec entry, after rendering its records in index order and writing the file.

    Rendering and writing in one step keeps image bytes off Beam's shuffle: only tasks and entries move.
    """

    def __init__(self, settings: RenderSettings, seed: int, output_dir: str):
        self._settings, self._seed, self._output_dir = settings, seed, output_dir
        self._rendered = Metrics.counter("captcha", "records_rendered")
        self._renderer = None

    def setup(self):
        self._renderer = CaptchaRenderer(self._settings)

    def process(self, task: Task):
        values = []
        for index in range(task.start, task.stop):
            values.append(records.serialize(self._renderer.render(self._seed, task.split, index)))
            self._rendered.inc()
        yield write_shard(self._output_dir, task.split, task.shard, task.num_shards, values)


class RenderShards(beam.PTransform):
    """Renders and writes every shard; outputs one spec entry per shard."""

    def __init__(self, settings, seed, sizes, num_shards, output_dir):
        super().__init__()
        self._settings, self._seed = settings, seed
        self._sizes, self._num_shards, self._output_dir = sizes, num_shards, output_dir

    def expand(self, pbegin):
        return (pbegin
                | "Plan" >> beam.Create(plan_tasks(self._sizes, self._num_shards))
                | "RenderAndWrite" >> beam.ParDo(RenderShard(self._settings, self._seed, self._output_dir)))
