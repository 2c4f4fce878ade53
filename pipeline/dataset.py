"""Building datasets into a Beam pipeline: checking the output folder, then the transforms of one dataset.

`pipeline.main` builds one dataset per pipeline; `pipeline.sweep` builds many in one pipeline.
"""

import logging
import os
from typing import Dict, Optional, Tuple

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions

from safeio import disk

from pipeline import progress, runners
from pipeline import spec as dataset_spec
from pipeline import storage
from pipeline.config import DatasetConfig
from pipeline.ingest import IngestImages
from pipeline.shards import image_record_bytes, is_shard_name, record_bytes
from pipeline.synthetic import RenderShards


def existing_spec(config: DatasetConfig) -> Optional[dict]:
    """The complete dataset already in the output folder, or None; raises ValueError if it conflicts."""
    try:
        existing = dataset_spec.read(config.output_dir)
    except ValueError as e:
        if config.overwrite:
            return None
        raise ValueError("%s holds an unreadable %s (%s); pass --overwrite to replace it"
                         % (config.output_dir, dataset_spec.SPEC_FILE, e)) from None
    if existing and existing.get("identity") != dataset_spec.identity(config) and not config.overwrite:
        raise ValueError(
            "%s already holds a complete dataset with other settings (identity %s, charset %r, "
            "counts %s); pass --overwrite to replace it, or choose another --output_dir" % (
                config.output_dir, existing.get("identity"), existing.get("charset"),
                {s: v.get("num_records") for s, v in existing["splits"].items()}))
    return existing


def prepare(config: DatasetConfig) -> bool:
    """Checks the output folder before any work. Returns False when it already holds this very dataset
    (and --overwrite is off); else True, once spec.json and then the shard and temporary files are gone (those
    of the dataset it replaces or of a failed run): the folder is incomplete until the new one is written."""
    existing = existing_spec(config)
    if existing and not config.overwrite:
        logging.info("%s already holds dataset %s with these settings; reusing it (--overwrite renders "
                     "it again)", config.output_dir, existing["identity"])
        return False
    if existing:
        odd = [f for f in dataset_spec.shard_files(existing) if not is_shard_name(f)]
        if odd:
            raise ValueError("%s lists %r as a shard, which is not a shard file name "
                             "(split.tfrecord-NNNNN-of-NNNNN); refusing to replace it, nothing was deleted: "
                             "check that folder, or choose another --output_dir"
                             % (storage.join(config.output_dir, dataset_spec.SPEC_FILE), odd[0]))
    storage.delete_if_exists([storage.join(config.output_dir, dataset_spec.SPEC_FILE)])
    storage.delete_if_exists([storage.join(config.output_dir, n) for n in storage.file_names(config.output_dir)
                              if dataset_spec.is_leftover(n)])  # their space is the new dataset's
    return True


class WriteDataset(beam.PTransform):
    """Writes one dataset, its spec.json last: the images source (pipeline.ingest) or the synthetic one
    (pipeline.synthetic) into shards, then the spec that lists them. Outputs the WriteSpec step's result.

        p | "WriteDataset" >> WriteDataset(config)
    """

    def __init__(self, config: DatasetConfig):
        super().__init__()
        self._config = config

    def expand(self, pbegin):
        config = self._config
        if config.ingest:
            entries, rejected, charset = pbegin | "IngestImages" >> IngestImages(
                config.ingest, config.files, config.num_shards, config.output_dir)
            rejected = beam.pvalue.AsSingleton(rejected | "CollectRejected" >> beam.combiners.ToList())
            charset = beam.pvalue.AsSingleton(charset)
        else:
            entries = pbegin | "RenderShards" >> RenderShards(config.render, config.seed, config.sizes,
                                                              config.num_shards, config.output_dir)
            rejected, charset = (), None
        return (entries
                | "CollectShards" >> beam.combiners.ToList()
                | "WriteSpec" >> beam.Map(dataset_spec.finalize, config, rejected, charset))


def estimated_bytes(config: DatasetConfig) -> int:
    """About the bytes of the dataset's shards: a render sample's mean record size times the records, or for
    the images source the shard plan's guess per image."""
    if config.ingest:
        return int(len(config.files) * image_record_bytes(config.ingest.width, config.ingest.height))
    return int(sum(config.sizes.values()) * record_bytes(config.render))


def free_space(configs) -> Dict[int, Tuple[int, int, str]]:
    """{disk: (bytes free, bytes the datasets on it need, a folder on it)} of the configs' local folders."""
    disks = {}
    for config in configs:
        free = disk.free_bytes(config.output_dir) if storage.is_local(config.output_dir) else None
        if free is not None:
            device = os.stat(config.output_dir).st_dev
            free, needed, folder = disks.get(device, (free, 0, config.output_dir))
            disks[device] = (free, needed + estimated_bytes(config), folder)
    return disks


def space_text(free: int, needed: int) -> str:
    return "it needs about %s, the disk has %s free" % (disk.megabytes(needed), disk.megabytes(free))


def check_space(disks) -> None:
    """Raises ValueError, before any work, where the datasets would not fit on their disk."""
    for free, needed, folder in disks.values():
        if needed > free:
            raise ValueError("not enough space for the dataset in %s: %s; free space or choose another folder, "
                             "then run the same command again" % (folder, space_text(free, needed)))


def delete_temporaries(config: DatasetConfig) -> None:
    """Deletes the temporary shard, spec and rejected.csv files that failed or killed workers left behind."""
    folder = config.output_dir
    storage.delete_if_exists([storage.join(folder, n) for n in storage.file_names(folder)
                              if storage.temporary_target(n) and dataset_spec.is_leftover(n)])


def render(configs: Dict[str, DatasetConfig], beam_args, verbosity: str) -> Tuple[float, Optional[dict], str]:
    """Writes the datasets {step label prefix: config} in one pipeline on the runner that `beam_args`
    names, with a progress line at the default --verbosity; returns (seconds, Beam counters or None if the
    runner reports none, runner). Refuses (ValueError) datasets that would not fit on their disk; a disk that
    fills up all the same is a ValueError too. A failed run leaves no temporary file."""
    disks = free_space(configs.values())
    check_space(disks)
    quiet = verbosity == "progress"
    num_tasks = sum(sum(c.num_shards.values()) for c in configs.values())
    options = runners.pipeline_options(beam_args, num_tasks, quiet)
    with progress.watch(list(configs.values()), enabled=quiet), runners.local_cluster(options, quiet):
        p = beam.Pipeline(options=options)
        written = [p | label + "WriteDataset" >> WriteDataset(config) for label, config in configs.items()]
        if len(written) > 1:  # DaskRunner computes the graph of the last step only: make it depend on all
            _ = written | "AllDatasets" >> beam.Flatten()
        try:
            elapsed, counters = runners.run(p, options)
        except BaseException as e:
            for config in configs.values():
                delete_temporaries(config)
            if disk.is_full(e):
                raise ValueError("no space left on the disk while writing %s (when the render started, %s); "
                                 "free space or choose another folder, then run the same command again" % (
                                     " and ".join(c.output_dir for c in configs.values()),
                                     "; ".join(space_text(f, n) for f, n, _ in disks.values()) or "remote")) from None
            raise
    return elapsed, counters, options.view_as(StandardOptions).runner
