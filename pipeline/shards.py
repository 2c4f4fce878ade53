"""Shards: their names, how many per split and which records each holds (the plan), and writing one.

Record i of a split goes to the shard that holds its index range (as tensorflow_datasets' Beam writer
assigns by key), and each shard is written in index order by one task (pipeline.synthetic renders it there),
so the bytes of every shard depend only on the settings, never on bundles, workers or the runner.
"""

import dataclasses
import functools
import hashlib
import io
import logging
import math
import re
from typing import Dict, List

from apache_beam.io.tfrecordio import _TFRecordUtil  # the framing WriteToTFRecord itself writes
from apache_beam.metrics import Metrics

from pipeline import records, storage
from pipeline.render import CaptchaRenderer, RenderSettings

SPLITS = ("train", "val", "test")
SIZE_SAMPLE = 16  # records rendered up front to estimate the bytes of a record
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


@functools.lru_cache(maxsize=256)  # a sweep's variants mostly share their render settings
def record_bytes(settings: RenderSettings) -> float:
    """The mean bytes of a synthetic record, from a sample of SIZE_SAMPLE renders."""
    renderer = CaptchaRenderer(settings)
    sample = [len(records.serialize(renderer.render(0, "size-sample", i))) for i in range(SIZE_SAMPLE)]
    return sum(sample) / len(sample)


def image_record_bytes(width: int, height: int) -> float:
    """About the bytes of an ingested record: a PNG of a third of the raw pixels."""
    return width * height * 3 / 3


def plan_shards(sizes: Dict[str, int], settings: RenderSettings, num_shards: int,
                shard_size_mb: float) -> Dict[str, int]:
    """Shards per split: `num_shards`, or `default_num_shards` by a sample's mean record size."""
    if num_shards:
        return {s: min(num_shards, n) for s, n in sizes.items()}
    return {s: default_num_shards(n, record_bytes(settings), shard_size_mb * 1e6) for s, n in sizes.items()}


def plan_image_shards(sizes: Dict[str, int], width: int, height: int, num_shards: int,
                      shard_size_mb: float) -> Dict[str, int]:
    """Shards per split of the images source, for `sizes` records expected per split: `num_shards`, or
    `default_num_shards` at `image_record_bytes`. Never 0: a record's split comes from its content hash, so even
    a split expected empty may get one."""
    if num_shards:
        return {s: num_shards for s in SPLITS}
    return {s: max(1, default_num_shards(n, image_record_bytes(width, height), shard_size_mb * 1e6))
            for s, n in sizes.items()}


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
    """Writes serialized records, in the given order, to one shard file; returns its spec entry. Each
    record goes to the shard's temporary file as it comes, so a watcher can count the records written."""
    name = shard_name(split, shard, num_shards)
    digest, num_records, num_bytes = hashlib.sha256(), 0, 0
    with storage.atomic_writer(storage.join(output_dir, name)) as f:
        for value in values:
            frame = io.BytesIO()
            _TFRecordUtil.write_record(frame, value)
            data = frame.getvalue()
            f.write(data)
            digest.update(data)
            num_records, num_bytes = num_records + 1, num_bytes + len(data)
    Metrics.counter("captcha", "bytes_written").inc(num_bytes)
    Metrics.counter("captcha", "shards_written").inc()
    logging.info("wrote %s: %d records, %.1f MB", name, num_records, num_bytes / 1e6)
    return {"split": split, "file": name, "num_records": num_records, "num_bytes": num_bytes,
            "sha256": digest.hexdigest()}
