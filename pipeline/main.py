"""Render labelled captchas into sharded TFRecords plus spec.json, on any Beam runner.

    python -m pipeline.main --output_dir=data/captcha --train_size=20000 --val_size=2000 --test_size=10000
    python -m pipeline.main --source=images --input=my_captchas/ --output_dir=data/real
    python -m pipeline.main --output_dir=gs://BUCKET/captcha --runner=DataflowRunner --project=P \
        --region=R --temp_location=gs://BUCKET/tmp --setup_file=./setup.py

With no --runner it runs locally on every core (FnApiRunner, multi_processing). Bad input, a mistyped
flag included, is one `error: ...` line on stderr and exit status 1, before any work.
"""

import logging
import sys

import apache_beam as beam

from pipeline import config as dataset_config
from pipeline import dataset
from pipeline import spec as dataset_spec
from pipeline import storage
from pipeline.ingest import REJECTED_FILE


def run(argv=None) -> dict:
    """Renders the dataset that `argv` describes and returns its spec. Raises ValueError on bad input."""
    config, beam_args = dataset_config.parse(argv)
    storage.ensure_writable(config.output_dir)
    with storage.locked(config.output_dir):
        if not dataset.prepare(config):
            return dataset_spec.read(config.output_dir)
        p = beam.Pipeline(options=dataset.pipeline_options(beam_args))
        dataset.add_dataset(p, config)
        elapsed = dataset.run_and_report(p)
    spec = dataset_spec.read(config.output_dir)
    if spec is None:
        raise ValueError("no image in --input %s was accepted; %s in %s says why" % (
            config.ingest.input, REJECTED_FILE, config.output_dir))
    total = sum(s["num_records"] for s in spec["splits"].values()) + spec.get("num_rejected", 0)
    logging.info("wrote %d records in %.1f s (%.0f records/s) into %s",
                 total, elapsed, total / max(elapsed, 1e-9), config.output_dir)
    return spec


def user_error(error: Exception) -> int:
    """Prints a user error as one `error: ...` line on stderr; returns 1, every entry point's exit status."""
    print("error: %s" % " ".join(str(error).splitlines()), file=sys.stderr)
    return 1


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(logging.INFO)
    try:
        run(argv)
    except ValueError as e:
        return user_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
