"""Render labelled captchas into sharded TFRecords plus spec.json, on any Beam runner.

    python -m pipeline.main --output_dir=data/captcha --train_size=20000 --val_size=2000 --test_size=10000
    python -m pipeline.main --source=images --input=my_captchas/ --output_dir=data/real
    python -m pipeline.main --output_dir=gs://BUCKET/captcha --runner=DataflowRunner --project=P \
        --region=R --temp_location=gs://BUCKET/tmp --setup_file=./setup.py

With no --runner it runs locally on every core (FnApiRunner, multi_processing); `--runner=dask` runs on
a Dask cluster (see pipeline/runners.py). It shows one progress line, then a summary; --verbosity=info
brings back the runners' logs. Bad input, a mistyped flag included, is one `error: ...` line on stderr
and exit status 1, before any work; a disk that fills up during the render is one such line too. Ctrl-C
or SIGTERM stops it with one line naming the runner's log, exit status 130, and no temporary file left.
"""

import contextlib
import signal
import sys

from pipeline import config as dataset_config
from pipeline import dataset, progress, runners
from pipeline import spec as dataset_spec
from pipeline import storage
from pipeline.ingest import REJECTED_FILE


def summary(spec: dict, output_dir: str, elapsed: float, counters, runner: str) -> str:
    """The lines printed after a render: counts, size, rate, Beam counters, and how to train on it."""
    splits = spec["splits"].values()
    records = sum(s["num_records"] for s in splits)
    lines = ["wrote %d records (%s) in %d shards to %s in %.1f s: %.0f records/s on %s" % (
        records, ", ".join("%s %d" % (name, s["num_records"]) for name, s in spec["splits"].items()),
        sum(len(s["shards"]) for s in splits), output_dir, elapsed, records / max(elapsed, 1e-9),
        runner.rsplit(".", 1)[-1])]
    lines.append("%.1f MB of TFRecords, dataset %s; spec.json lists every shard with its sha256" % (
        sum(s["num_bytes"] for s in splits) / 1e6, spec["identity"]))
    if spec.get("num_rejected"):
        lines.append("%d of %d files rejected: %s says why" % (spec["num_rejected"], spec["num_files"],
                                                               storage.join(output_dir, REJECTED_FILE)))
    lines += runners.describe_counters(counters, runner)
    lines.append("train on it: python -m trainer.main --model=ctc --data_dir=%s --model_dir=runs/ctc" % output_dir)
    return "\n".join(lines)


def run(argv=None) -> dict:
    """Renders the dataset that `argv` describes, prints a summary, returns its spec. Raises ValueError on
    bad input."""
    verbosity = progress.parse_verbosity(argv)
    runners.require(argv)
    config, beam_args = dataset_config.parse(argv)
    storage.ensure_writable(config.output_dir)
    with storage.locked(config.output_dir):
        if not dataset.prepare(config):
            spec = dataset_spec.read(config.output_dir)
            print("%s already holds this dataset (%s); reused it (--overwrite renders it again)"
                  % (config.output_dir, spec["identity"]))
            return spec
        elapsed, counters, runner = dataset.render({"": config}, beam_args, verbosity)
    spec = dataset_spec.read(config.output_dir)
    if spec is None:
        raise ValueError("no image in --input %s was accepted; %s in %s says why" % (
            config.ingest.input, REJECTED_FILE, config.output_dir))
    print(summary(spec, config.output_dir, elapsed, counters, runner))
    return spec


def user_error(error: Exception) -> int:
    """Prints a user error as one `error: ...` line on stderr; returns 1, every entry point's exit status."""
    print("error: %s" % " ".join(str(error).splitlines()), file=sys.stderr)
    return 1


INTERRUPTED = 130  # the shell's status for a process ended by Ctrl-C (128 + SIGINT)


def interrupted(error: KeyboardInterrupt) -> int:
    """Prints the one line of a render stopped by Ctrl-C or SIGTERM; returns INTERRUPTED."""
    log = " (the runner's log: %s)" % error.args[0] if error.args else ""
    print("error: interrupted before the render was complete: run the same command again to finish it%s" % log,
          file=sys.stderr)
    return INTERRUPTED


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM stops the block as Ctrl-C does (one line, temporary files deleted); the old handler after it."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    try:
        with sigterm_as_interrupt():
            progress.configure_logging(progress.parse_verbosity(argv))
            run(argv)
    except ValueError as e:
        return user_error(e)
    except KeyboardInterrupt as e:
        return interrupted(e)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
