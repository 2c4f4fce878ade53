"""Render every dataset variant of a sweep file's grid that is not already there, in ONE Beam pipeline.

    python -m pipeline.sweep --sweep_file=sweeps/lengths.yaml --output_root=data/sweep [Beam options]
    python -m pipeline.sweep --sweep_file=sweeps/lengths.yaml --output_root=data/sweep --runner=dask

The sweep file (YAML or JSON) has a `dataset` section of `base` settings and a `grid` of lists, keyed by
`python -m pipeline.main` flag names without dashes (and an optional `train` section that
`python -m experiments.sweep` reads):

    dataset:
      base: {val_size: 1000, test_size: 2000}
      grid: {length: [4, 5], charset: [digits, alnum_upper]}

Each variant goes to OUTPUT_ROOT/<name>-<identity>/, where identity is the hash of everything that decides
its bytes; a variant already complete there is reused. OUTPUT_ROOT/index.json lists every variant with
its settings and folder. OUTPUT_ROOT and each variant's folder are locked while the sweep runs.
"""

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
from typing import Dict

import tqdm

import sweepfile
from pipeline import config as dataset_config
from pipeline import dataset, progress, runners, storage
from pipeline import main as pipeline_main
from pipeline import spec as dataset_spec

# Flags a sweep may set: every pipeline flag but those that name or replace the output.
PROGRESS_FROM = 200  # variants from which planning shows a progress line (about a second of work)
DATASET_KEYS = sorted(a.dest for a in dataset_config.build_parser()._actions
                      if a.dest not in ("help", "output_dir", "overwrite", "verbosity"))


def _flag(key, value) -> str:
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "--%s" % key if value else ""
    return "--%s=%s" % (key, value)


def plan(sweep: dict, output_root: str):
    """[(settings, name, DatasetConfig)] for every variant; raises ValueError naming a bad value."""
    grid_keys = list(sweep["dataset"]["grid"]) if isinstance(sweep.get("dataset"), dict) else []
    variants = sweepfile.variants(sweep, "dataset", DATASET_KEYS)
    planned, folders = [], set()
    for settings in tqdm.tqdm(variants, desc="plan", unit=" variants", disable=len(variants) < PROGRESS_FROM):
        name = sweepfile.variant_name(settings, grid_keys)
        flags = [f for f in (_flag(k, v) for k, v in settings.items()) if f]
        try:
            config, _ = dataset_config.parse(flags + ["--output_dir=%s" % output_root])
        except ValueError as e:
            raise ValueError("dataset variant %s: %s" % (name, e)) from None
        folder = "%s-%s" % (name, dataset_spec.identity(config))
        if folder in folders:
            raise ValueError("dataset variant %s comes twice from the grid: give each value once" % name)
        folders.add(folder)
        config = dataclasses.replace(config, output_dir=storage.join(output_root, folder))
        planned.append((settings, folder, config))
    return planned


def read_index(path: str) -> Dict[str, dict]:
    """{folder: entry} of the variants in index.json, if there is one; raises ValueError if it is not one."""
    try:
        return {v["folder"]: v for v in (storage.read_json(path) or {"variants": []})["variants"]}
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError("%s is not a sweep index (%s); delete it to start a new one, or choose another "
                         "--output_root" % (path, e)) from None


def build_parser() -> argparse.ArgumentParser:
    """This command's own flags; every other argument is a Beam pipeline option."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.sweep", exit_on_error=False,
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sweep_file")
    parser.add_argument("--output_root")
    dataset_config.add_verbosity_flag(parser)
    return parser


def run(argv=None) -> dict:
    """Renders the missing variants and writes index.json; returns the index."""
    parser = build_parser()
    runners.require(argv)
    args, beam_args = dataset_config.split_args(parser, argv)
    if not args.sweep_file or not args.output_root:
        raise ValueError("--sweep_file and --output_root are required")
    planned = plan(sweepfile.load(args.sweep_file), args.output_root)
    storage.ensure_writable(args.output_root, "--output_root")
    index_path = storage.join(args.output_root, sweepfile.INDEX_FILE)
    with contextlib.ExitStack() as locks:
        locks.enter_context(storage.locked(args.output_root))
        entries = read_index(index_path)
        status, rendered = {}, {}
        for settings, folder, config in planned:
            storage.ensure_writable(config.output_dir)
            locks.enter_context(storage.locked(config.output_dir))
            status[folder] = "rendered" if dataset.prepare(config) else "reused"
            if status[folder] == "rendered":
                rendered["%s/" % folder] = config
        if rendered:
            logging.info("rendering %d of %d variants in one pipeline", len(rendered), len(planned))
            elapsed, counters, runner = dataset.render(rendered, beam_args, args.verbosity)
            logging.info("rendered in %.1f s; %s", elapsed, "; ".join(runners.describe_counters(counters, runner)))
        else:
            logging.info("all %d variants are already complete; nothing to render", len(planned))
        for settings, folder, config in planned:
            spec = dataset_spec.read(config.output_dir)
            entries[folder] = sweepfile.index_entry(folder, spec["identity"], settings, status[folder],
                                                    {s: v["num_records"] for s, v in spec["splits"].items()})
        index = {"variants": sorted(entries.values(), key=lambda v: v["folder"])}
        storage.write_atomic(index_path, json.dumps(index, indent=2).encode("utf-8"))
    return index


def main(argv=None) -> int:
    try:
        with pipeline_main.sigterm_as_interrupt():
            progress.configure_logging(progress.parse_verbosity(argv))
            index = run(argv)
    except ValueError as e:
        return pipeline_main.user_error(e)
    except KeyboardInterrupt as e:
        return pipeline_main.interrupted(e)
    for variant in index["variants"]:
        print("%-9s %s" % (variant["status"], variant["folder"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
