"""Render every dataset variant of a sweep file's grid that is not already there, in ONE Beam pipeline.

    python -m pipeline.sweep --sweep_file=sweeps/lengths.yaml --output_root=data/sweep [Beam options]

The sweep file (YAML or JSON) has a `dataset` section of `base` settings and a `grid` of lists, keyed by
`python -m pipeline.main` flag names without dashes (and an optional `train` section that
`python -m trainer.sweep` reads):

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
import itertools
import json
import logging
import re
import sys
from typing import Dict, List

import apache_beam as beam
import yaml

from pipeline import config as dataset_config
from pipeline import dataset, storage
from pipeline import main as pipeline_main
from pipeline import spec as dataset_spec

INDEX_FILE = "index.json"
SECTIONS = ("dataset", "train")
# Flags a sweep may set: every pipeline flag but those that name or replace the output.
DATASET_KEYS = sorted(a.dest for a in dataset_config.build_parser()._actions
                      if a.dest not in ("help", "output_dir", "overwrite"))


def load_sweep(path: str) -> dict:
    """The parsed sweep file; raises ValueError naming the bad key or value."""
    try:
        with open(path) as f:
            sweep = yaml.safe_load(f)  # YAML is a superset of JSON
    except OSError as e:
        raise ValueError("--sweep_file %s cannot be read: %s" % (path, e)) from None
    except yaml.YAMLError as e:
        raise ValueError("--sweep_file %s is not valid YAML/JSON: %s" % (path, e)) from None
    if not isinstance(sweep, dict):
        raise ValueError("--sweep_file %s must hold a mapping with a 'dataset' section" % path)
    for key in sweep:
        if key not in SECTIONS:
            raise ValueError("unknown key %r in the sweep file; expected %s" % (key, " and ".join(SECTIONS)))
    return sweep


def section_variants(sweep: dict, section: str, known_keys: List[str]) -> List[Dict]:
    """base + each combination of the grid, in grid order; raises ValueError naming a bad key."""
    part = sweep.get(section)
    if not isinstance(part, dict):
        raise ValueError("the sweep file needs a %r section with 'base' and 'grid'" % section)
    for key in part:
        if key not in ("base", "grid"):
            raise ValueError("unknown key %r in %s; expected base and grid" % (key, section))
    base, grid = part.get("base") or {}, part.get("grid") or {}
    if not grid:
        raise ValueError("%s.grid is empty: give at least one key with a list of values" % section)
    for where, mapping in (("base", base), ("grid", grid)):
        if not isinstance(mapping, dict):
            raise ValueError("%s.%s must be a mapping of flag names to values" % (section, where))
        for key in mapping:
            if key not in known_keys:
                raise ValueError("unknown key %r in %s.%s; known keys: %s"
                                 % (key, section, where, ", ".join(known_keys)))
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError("%s.grid.%s must be a non-empty list of values" % (section, key))
    return [dict(base, **dict(zip(grid, combo))) for combo in itertools.product(*grid.values())]


def _flag(key, value) -> str:
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "--%s" % key if value else ""
    return "--%s=%s" % (key, value)


def variant_name(settings: Dict, grid_keys) -> str:
    """A readable folder prefix from the grid's values, e.g. length-5_charset-digits."""
    parts = ["%s-%s" % (k, settings[k]) for k in grid_keys]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(parts))[:120]


def plan(sweep: dict, output_root: str):
    """[(settings, name, DatasetConfig)] for every variant; raises ValueError naming a bad value."""
    variants = section_variants(sweep, "dataset", DATASET_KEYS)
    grid_keys = list(sweep["dataset"]["grid"])
    planned = []
    for settings in variants:
        name = variant_name(settings, grid_keys)
        flags = [f for f in (_flag(k, v) for k, v in settings.items()) if f]
        try:
            config, _ = dataset_config.parse(flags + ["--output_dir=%s" % output_root])
        except ValueError as e:
            raise ValueError("dataset variant %s: %s" % (name, e)) from None
        folder = "%s-%s" % (name, dataset_spec.identity(config))
        if any(folder == f for _, f, _ in planned):
            raise ValueError("dataset variant %s comes twice from the grid: give each value once" % name)
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


def run(argv=None) -> dict:
    """Renders the missing variants and writes index.json; returns the index."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.sweep", exit_on_error=False,
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sweep_file")
    parser.add_argument("--output_root")
    args, beam_args = dataset_config.split_args(parser, argv)
    if not args.sweep_file or not args.output_root:
        raise ValueError("--sweep_file and --output_root are required")
    planned = plan(load_sweep(args.sweep_file), args.output_root)
    storage.ensure_writable(args.output_root, "--output_root")
    index_path = storage.join(args.output_root, INDEX_FILE)
    with contextlib.ExitStack() as locks:
        locks.enter_context(storage.locked(args.output_root))
        entries = read_index(index_path)
        p = beam.Pipeline(options=dataset.pipeline_options(beam_args))
        status = {}
        for settings, folder, config in planned:
            storage.ensure_writable(config.output_dir)
            locks.enter_context(storage.locked(config.output_dir))
            status[folder] = "rendered" if dataset.prepare(config) else "reused"
            if status[folder] == "rendered":
                dataset.add_dataset(p, config, label="%s/" % folder)
        rendered = [f for f, s in status.items() if s == "rendered"]
        if rendered:
            logging.info("rendering %d of %d variants in one pipeline", len(rendered), len(planned))
            dataset.run_and_report(p)
        else:
            logging.info("all %d variants are already complete; nothing to render", len(planned))
        for settings, folder, config in planned:
            spec = dataset_spec.read(config.output_dir)
            entries[folder] = {"folder": folder, "identity": spec["identity"], "settings": settings,
                               "status": status[folder],
                               "num_records": {s: v["num_records"] for s, v in spec["splits"].items()}}
        index = {"variants": sorted(entries.values(), key=lambda v: v["folder"])}
        storage.write_atomic(index_path, json.dumps(index, indent=2).encode("utf-8"))
    return index


def main(argv=None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(logging.INFO)
    try:
        index = run(argv)
    except ValueError as e:
        return pipeline_main.user_error(e)
    for variant in index["variants"]:
        print("%-9s %s" % (variant["status"], variant["folder"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
