"""Building datasets into a Beam pipeline: checking the output folder, then the transforms of one dataset.

`pipeline.main` builds one dataset per pipeline; `pipeline.sweep` builds many in one pipeline.
"""

import logging
import time
from typing import Optional

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipeline import spec as dataset_spec
from pipeline import storage
from pipeline.config import DatasetConfig
from pipeline.ingest import IngestImages
from pipeline.shards import RenderShards, is_shard_name


def pipeline_options(beam_args) -> PipelineOptions:
    """Beam's options as given; without --runner, the local FnApiRunner on all cores (not Prism)."""
    options = PipelineOptions(beam_args)
    given = {arg.split("=", 1)[0] for arg in beam_args}  # Beam's flags take no abbreviations
    if "--runner" not in given:
        options.view_as(StandardOptions).runner = "FnApiRunner"
        direct = options.view_as(DirectOptions)
        if "--direct_running_mode" not in given:
            direct.direct_running_mode = "multi_processing"
        if "--direct_num_workers" not in given:
            direct.direct_num_workers = 0  # one worker per core
    return options


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
    (and --overwrite is off); else True, once spec.json is gone: the folder is incomplete until the new
    one is written (`spec.finalize` then deletes the shards that the new dataset does not list)."""
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
    return True


def add_dataset(p: beam.Pipeline, config: DatasetConfig, label: str = "") -> None:
    """Adds the transforms that write one dataset, its spec.json last, to pipeline `p`."""
    if config.ingest:
        entries, rejected, charset = p | label + "IngestImages" >> IngestImages(
            config.ingest, config.files, config.num_shards, config.output_dir)
        rejected = beam.pvalue.AsSingleton(rejected | label + "CollectRejected" >> beam.combiners.ToList())
        charset = beam.pvalue.AsSingleton(charset)
    else:
        entries = p | label + "RenderShards" >> RenderShards(config.render, config.seed, config.sizes,
                                                             config.num_shards, config.output_dir)
        rejected, charset = (), None
    _ = (entries
         | label + "CollectShards" >> beam.combiners.ToList()
         | label + "WriteSpec" >> beam.Map(dataset_spec.finalize, config, rejected, charset))


def run_and_report(p: beam.Pipeline) -> float:
    """Runs `p` to the end, logs its counters; returns the seconds it took."""
    started = time.time()
    result = p.run()
    result.wait_until_finish()
    for counter in result.metrics().query(MetricsFilter().with_namespace("captcha"))["counters"]:
        logging.info("%s: %d", counter.key.metric.name, counter.committed)
    return time.time() - started
