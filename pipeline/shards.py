"""Beam transforms that render records and write them to shards in an order no runner can change.

Record i of a split goes to the shard that holds its index range (as tensorflow_datasets' Beam writer
assigns by key), and each shard is sorted by index before it is written, so the bytes of every shard
depend only on the settings, never on bundles, workers or the runner.
"""

import dataclasses
import hashlib
import io
import logging
from typing import Dict, List

import apache_beam as beam
from apache_beam.io.tfrecordio import _TFRecordUtil  # the framing WriteToTFRecord itself writes
from apache_beam.metrics import Metrics

from pipeline import records, storage
from pipeline.render import CaptchaRenderer, RenderSettings

SPLITS = ("train", "val", "test")
RECORDS_PER_TASK = 100  # ~0.25 s of rendering: small enough to balance load across workers


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return "%s.tfrecord-%05d-of-%05d" % (split, shard, num_shards)


def shard_range(num_records: int, num_shards: int, shard: int) -> range:
    """The record indices that shard `shard` of `num_shards` holds: contiguous, sizes differ by <= 1."""
    return range(shard * num_records // num_shards, (shard + 1) * num_records // num_shards)


@dataclasses.dataclass(frozen=True)
class Task:
    """A run of records of one shard, rendered by one worker call."""
    split: str
    shard: int
    start: int
    stop: int


def plan_tasks(sizes: Dict[str, int], num_shards: Dict[str, int]) -> List[Task]:
    tasks = []
    for split in SPLITS:
        for shard in range(num_shards[split]):
            indices = shard_range(sizes[split], num_shards[split], shard)
            for start in range(indices.start, indices.stop, RECORDS_PER_TASK):
                tasks.append(Task(split, shard, start, min(start + RECORDS_PER_TASK, indices.stop)))
    return tasks


class RenderTask(beam.DoFn):
    """Task -> ((split, shard), (index, serialized Example)) for each record of the task."""

    def __init__(self, settings: RenderSettings, seed: int):
        self._settings = settings
        self._seed = seed
        self._rendered = Metrics.counter("captcha", "records_rendered")
        self._renderer = None

    def setup(self):
        self._renderer = CaptchaRenderer(self._settings)

    def process(self, task: Task):
        for index in range(task.start, task.stop):
            record = self._renderer.render(self._seed, task.split, index)
            self._rendered.inc()
            yield (task.split, task.shard), (index, records.serialize(record))


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


class WriteShard(beam.DoFn):
    """((split, shard), [(index, bytes)]) -> the shard's spec entry, after writing it sorted by index."""

    def __init__(self, output_dir: str, num_shards: Dict[str, int]):
        self._output_dir = output_dir
        self._num_shards = num_shards

    def process(self, element):
        (split, shard), items = element
        values = [value for _, value in sorted(items, key=lambda item: item[0])]
        yield write_shard(self._output_dir, split, shard, self._num_shards[split], values)


class RenderShards(beam.PTransform):
    """Renders every planned task and writes the shards; outputs one spec entry per shard."""

    def __init__(self, settings, seed, sizes, num_shards, output_dir):
        super().__init__()
        self._settings, self._seed = settings, seed
        self._sizes, self._num_shards, self._output_dir = sizes, num_shards, output_dir

    def expand(self, pbegin):
        return (pbegin
                | "Plan" >> beam.Create(plan_tasks(self._sizes, self._num_shards))
                | "Render" >> beam.ParDo(RenderTask(self._settings, self._seed))
                | "GroupByShard" >> beam.GroupByKey()
                | "Write" >> beam.ParDo(WriteShard(self._output_dir, self._num_shards)))
