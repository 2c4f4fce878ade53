"""Building datasets into a Beam pipeline: checking the output folder, then the transforms of one dataset.

`pipeline.main` builds one dataset per pipeline; `pipeline.sweep` builds many in one pipeline.
"""

import logging
import time
from typing import List, Optional

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipeline import spec as dataset_spec
from pipeline import storage
from pipeline.config import DatasetConfig
from pipeline.ingest import IngestImages
from pipeline.shards import RenderShards


def pipeline_options(beam_args) -> PipelineOptions:
    """Beam's options as given; without --runner, the local FnApiRunner on all cores (not Prism)."""
    options = PipelineOptions(beam_args)
    explicit = options.get_all_options(drop_default=True)
    if not explicit.get("runner"):
        options.view_as(StandardOptions).runner = "FnApiRunner"
        direct = options.view_as(DirectOptions)
        if "direct_running_mode" not in explicit:
            direct.direct_running_mode = "multi_processing"
        if "direct_num_workers" not in explicit:
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
                {s: v.get("num_records") for s, v in existing.get("splits", {}).items()}))
    return existing


def prepare(config: DatasetConfig) -> Optional[List[str]]:
    """Checks the output folder before any work. Returns None when it already holds this very dataset
    (and --overwrite is off), else the files of a dataset being replaced, to delete once done."""
    storage.ensure_writable(config.output_dir)
    existing = existing_spec(config)
    if existing and not config.overwrite:
        logging.info("%s already holds dataset %s with these settings; reusing it (--overwrite renders "
                     "it again)", config.output_dir, existing["identity"])
        return None
    # From here on the folder is incomplete until the new spec.json is written.
    storage.delete_if_exists([storage.join(config.output_dir, dataset_spec.SPEC_FILE)])
    return dataset_spec.shard_files(existing) if existing else []


def add_dataset(p: beam.Pipeline, config: DatasetConfig, stale: List[str], label: str = "") -> None:
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
         | label + "WriteSpec" >> beam.Map(dataset_spec.finalize, config, stale, rejected, charset))


def run_and_report(p: beam.Pipeline) -> float:
    """Runs `p` to the end, logs its counters; returns the seconds it took."""
    started = time.time()
    result = p.run()
    result.wait_until_finish()
    for counter in result.metrics().query(MetricsFilter().with_namespace("captcha"))["counters"]:
        logging.info("%s: %d", counter.key.metric.name, counter.committed)
    return time.time() - started
