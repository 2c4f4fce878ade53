"""Which Beam runner runs the pipeline, for how long it lives, and what it counted.

    python -m pipeline.main --train_size=20000                      # FnApiRunner, one process per core
    python -m pipeline.main --runner=dask --train_size=20000        # a Dask LocalCluster started for the run
    python -m pipeline.main --runner=dask --dask_client_address=tcp://SCHEDULER:8786 --output_dir=/shared/d

Without --runner: the local FnApiRunner on every core (Beam 2.77's default would try Prism, which
downloads a binary). `--runner=dask` (or DaskRunner, or its class path) needs `pip install -e '.[dask]'`;
with no --dask_client_address or --dask_scheduler_file a LocalCluster of one single-threaded worker process
per core is started and closed for the run. Runners that report no metrics (Dask) get a summary that
says so; the counts then come from spec.json.
"""

import contextlib
import logging
import os
import time
from typing import Dict, List, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions, WorkerOptions

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
DASK_NAMES = ("dask", "daskrunner", DASK_RUNNER.lower())
COUNTERS = ("records_rendered", "bytes_written", "shards_written")


def _given(beam_args) -> Dict[str, str]:
    """{flag: value} of the Beam arguments given (Beam's flags take no abbreviations)."""
    return dict((arg.split("=", 1) + [""])[:2] for arg in beam_args)


def require(argv) -> None:
    """Raises ValueError if `argv` asks for a runner whose package is not installed (Dask's is optional)."""
    argv = list(argv or ())
    runners = [a.split("=", 1)[1] for a in argv if a.startswith("--runner=")]
    runners += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--runner"]
    for runner in (r for r in runners if r.lower() in DASK_NAMES):
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            raise ValueError("--runner=%s needs Dask, which is not installed: pip install -e '.[dask]'"
                             % runner) from None


def pipeline_options(beam_args, num_tasks: int = 0, quiet: bool = False) -> PipelineOptions:
    """Beam's options as given; without --runner, the local FnApiRunner on all cores (not Prism).

    `--runner=dask` becomes DaskRunner's class path, with one Dask partition per task (`num_tasks`, the
    shards) unless --dask_npartitions or --dask_partition_size says otherwise: its default of 128 items per
    partition would give every shard to one worker. `quiet` keeps workers' INFO logs out."""
    require(beam_args)
    options = PipelineOptions(beam_args)
    given = _given(beam_args)
    standard = options.view_as(StandardOptions)
    if "--runner" not in given:
        standard.runner = "FnApiRunner"
        direct = options.view_as(DirectOptions)
        if "--direct_running_mode" not in given:
            direct.direct_running_mode = "multi_processing"
        if "--direct_num_workers" not in given:
            direct.direct_num_workers = 0  # one worker per core
    elif standard.runner.lower() in DASK_NAMES:
        standard.runner = DASK_RUNNER
        if num_tasks and not {"--dask_npartitions", "--dask_partition_size"} & set(given):
            from apache_beam.runners.dask.dask_runner import DaskOptions
            options.view_as(DaskOptions).npartitions = num_tasks
    if quiet and "--default_sdk_harness_log_level" not in given:
        options.view_as(WorkerOptions).default_sdk_harness_log_level = "WARNING"
    return options


def is_dask(options: PipelineOptions) -> bool:
    return options.view_as(StandardOptions).runner == DASK_RUNNER


@contextlib.contextmanager
def local_cluster(options: PipelineOptions, quiet: bool = False):
    """For DaskRunner without a scheduler address: starts a LocalCluster of one single-threaded worker
    process per core for the block, and points `options` at it. Otherwise does nothing."""
    if not is_dask(options):
        yield
        return
    from apache_beam.runners.dask.dask_runner import DaskOptions
    from dask.distributed import LocalCluster
    dask_options = options.view_as(DaskOptions)
    if dask_options.address or dask_options.scheduler_file:
        yield
        return
    with LocalCluster(n_workers=os.cpu_count(), threads_per_worker=1, processes=True,
                      silence_logs=logging.WARNING if quiet else logging.INFO,
                      dashboard_address=":0") as cluster:
        dask_options.address = cluster.scheduler_address
        yield


def run(p: beam.Pipeline, options: PipelineOptions) -> Tuple[float, Optional[Dict[str, int]]]:
    """Runs `p` to the end; returns (seconds, {counter: value} of the `captcha` namespace), or None for
    the counters when the runner reports no metrics."""
    started = time.time()
    result = p.run()
    try:
        result.wait_until_finish()
    finally:
        if is_dask(options):
            result.client.close()  # DaskRunner never closes the client it opens
    elapsed = time.time() - started
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace("captcha"))["counters"]
    except NotImplementedError:  # DaskRunner: "collecting metrics will come later!"
        return elapsed, None
    return elapsed, {c.key.metric.name: c.committed for c in counters}


def describe_counters(counters: Optional[Dict[str, int]], runner: str) -> List[str]:
    """Lines for the summary: the counters, or what could not be counted."""
    if counters is None:
        return ["%s reports no Beam metrics: %s could not be counted (the counts above come from spec.json)"
                % (runner.rsplit(".", 1)[-1], ", ".join(COUNTERS))]
    return ["Beam counters: %s" % ", ".join("%s=%d" % kv for kv in sorted(counters.items()))]
