"""Render labelled captchas into sharded TFRecords plus spec.json, on any Beam runner.

    python -m pipeline.main --output_dir=data/captcha --train_size=20000 --val_size=2000 --test_size=10000
    python -m pipeline.main --output_dir=gs://BUCKET/captcha --runner=DataflowRunner --project=P \
        --region=R --temp_location=gs://BUCKET/tmp --setup_file=./setup.py

With no --runner it runs locally on every core (FnApiRunner, multi_processing).
"""

import logging
import sys
import time

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipeline import config as dataset_config
from pipeline import spec as dataset_spec
from pipeline import storage
from pipeline.ingest import REJECTED_FILE, IngestImages
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


def _existing_spec(config):
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


def run(argv=None) -> dict:
    """Renders the dataset that `argv` describes and returns its spec. Raises ValueError on bad input."""
    config, beam_args = dataset_config.parse(argv)
    storage.ensure_writable(config.output_dir)
    existing = _existing_spec(config)
    if existing and not config.overwrite:
        logging.info("%s already holds dataset %s with these settings; reusing it (--overwrite renders "
                     "it again)", config.output_dir, existing["identity"])
        return existing
    stale = dataset_spec.shard_files(existing) if existing else []
    # From here on the folder is incomplete until the new spec.json is written.
    storage.delete_if_exists([storage.join(config.output_dir, dataset_spec.SPEC_FILE)])

    started = time.time()
    p = beam.Pipeline(options=pipeline_options(beam_args))
    if config.ingest:
        entries, rejected, charset = p | "IngestImages" >> IngestImages(
            config.ingest, config.files, config.num_shards, config.output_dir)
        rejected = beam.pvalue.AsSingleton(rejected | "CollectRejected" >> beam.combiners.ToList())
        charset = beam.pvalue.AsSingleton(charset)
    else:
        entries = p | "RenderShards" >> RenderShards(config.render, config.seed, config.sizes,
                                                     config.num_shards, config.output_dir)
        rejected, charset = (), None
    _ = (entries
         | "CollectShards" >> beam.combiners.ToList()
         | "WriteSpec" >> beam.Map(dataset_spec.finalize, config, stale, rejected, charset))
    result = p.run()
    result.wait_until_finish()
    elapsed = time.time() - started
    for counter in result.metrics().query(MetricsFilter().with_namespace("captcha"))["counters"]:
        logging.info("%s: %d", counter.key.metric.name, counter.committed)
    spec = dataset_spec.read(config.output_dir)
    if spec is None:
        raise ValueError("no image in --input %s was accepted; %s in %s says why" % (
            config.ingest.input, REJECTED_FILE, config.output_dir))
    total = sum(s["num_records"] for s in spec["splits"].values()) + spec.get("num_rejected", 0)
    logging.info("rendered %d records in %.1f s (%.0f records/s) into %s",
                 total, elapsed, total / max(elapsed, 1e-9), config.output_dir)
    return spec


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(logging.INFO)
    try:
        run(argv)
    except ValueError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
