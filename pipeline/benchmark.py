"""Rendering throughput: one bare process vs the real pipeline on the local runner with all cores.

    python -m pipeline.benchmark --num_records=20000
    python -m pipeline.benchmark --num_records=120000 --modes=multi_processing,dask

Prints (a) ImageCaptcha.generate_image + PNG encode per second in one process, (a') the same in one
bare process per core at once (what the cores really deliver together), (b) the pipeline's records
per second end to end (start-up, rendering, writing shards and spec), and the ratios b / (cores x a)
and b / a', then (a') again after the pipelines and b over the mean of both (a') figures. --modes
compares Beam's local running modes, and `dask`: Beam's DaskRunner on a LocalCluster of one worker
process per core, started and closed inside the timed run (needs the dask extra).
"""

import argparse
import io
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time

import captcha.image

from pipeline import config as dataset_config
from pipeline import main as pipeline_main
from pipeline import runners

MODES = ("multi_processing", "multi_threading", "in_memory", "dask")


def raw_rate(num_images: int) -> float:
    """generate_image + PNG encode per second, in this process, as a user of the library would call it."""
    generator = captcha.image.ImageCaptcha(width=128, height=64)
    rng = random.Random(0)
    texts = ["".join(rng.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
             for _ in range(num_images)]
    started = time.perf_counter()
    for text in texts:
        generator.generate_image(text).save(io.BytesIO(), format="PNG")
    return num_images / (time.perf_counter() - started)


def parallel_raw_rate(num_images: int, processes: int) -> float:
    """`raw_rate` in `processes` bare processes at once, summed: what this machine's cores really give."""
    with multiprocessing.Pool(processes) as pool:
        return sum(pool.map(raw_rate, [num_images] * processes))


def pipeline_rate(num_records: int, mode: str, workers: int) -> float:
    folder = tempfile.mkdtemp(prefix="captcha-bench-")
    try:
        started = time.perf_counter()
        runner = (["--runner=dask"] if mode == "dask" else
                  ["--direct_running_mode=%s" % mode, "--direct_num_workers=%d" % workers])
        pipeline_main.run(["--output_dir=%s" % folder, "--train_size=%d" % num_records,
                           "--val_size=0", "--test_size=0", *runner])
        return num_records / (time.perf_counter() - started)
    finally:
        shutil.rmtree(folder)


def build_parser() -> argparse.ArgumentParser:
    """This command's flags."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.benchmark", description=__doc__.splitlines()[0],
                                     exit_on_error=False)
    parser.add_argument("--num_records", type=int, default=20_000)
    parser.add_argument("--raw_images", type=int, default=2_000)
    parser.add_argument("--modes", default="multi_processing",
                        help="comma-separated: %s" % ", ".join(MODES))
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args, _ = dataset_config.split_args(parser, argv, beam=False)
        modes = args.modes.split(",")
        if args.num_records < 1 or args.raw_images < 1:
            raise ValueError("--num_records and --raw_images must be at least 1")
        if any(m not in MODES for m in modes):
            raise ValueError("--modes=%s: each mode must be one of %s" % (args.modes, ", ".join(MODES)))
        if "dask" in modes:
            runners.require(["--runner=dask"])
    except ValueError as e:
        return pipeline_main.user_error(e)
    cores = os.cpu_count()
    raw = raw_rate(args.raw_images)
    print("(a)  raw generate_image + PNG, 1 process:    %8.1f images/s" % raw)
    parallel = parallel_raw_rate(args.raw_images, cores)
    print("(a') raw, %d bare processes at once, summed:  %8.1f images/s  (%.2f x a)"
          % (cores, parallel, parallel / raw))
    rates = {}
    for mode in modes:
        workers = 1 if mode == "in_memory" else cores
        rates[mode] = rate = pipeline_rate(args.num_records, mode, workers)
        print("(b)  pipeline %s, %d workers, %d records: %.1f records/s in %.1f s; "
              "b/(%d x a) = %.3f, b/a' = %.3f" % (mode, workers, args.num_records, rate,
                                                 args.num_records / rate, cores,
                                                 rate / (cores * raw), rate / parallel))
    # A shared or throttled machine drifts over a long run: (a') again after the pipelines brackets them.
    after = parallel_raw_rate(args.raw_images, cores)
    bracket = (parallel + after) / 2
    print("(a') again after the pipelines:            %8.1f images/s; mean of both %.1f" % (after, bracket))
    for mode, rate in rates.items():
        print("     b/mean(a') for %s: %.3f" % (mode, rate / bracket))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
