"""The sweep file and index.json contract, shared by pipeline.sweep and experiments.sweep (neither imports the other).

    python -m pipeline.sweep --sweep_file=sweeps/lengths.yaml --output_root=data/sweep
    python -m experiments.sweep --sweep_file=sweeps/lengths.yaml --output_root=data/sweep

A sweep file (YAML or JSON) holds a `dataset` and a `train` section, each of `base` settings and a `grid` of
lists, keyed by the flag names of pipeline.main and trainer.main without dashes. pipeline.sweep renders every
dataset variant into OUTPUT_ROOT/<variant_name>-<identity>/ and lists them in OUTPUT_ROOT/index.json as
{"variants": [{"folder", "identity", "settings", "status", "num_records"}]}; experiments.sweep finds each variant's
folder there by its settings (`folders_by_settings`). Errors are ValueErrors whose message names the bad key or value.
"""
import itertools
import json
import math
import re

import yaml

SECTIONS = ("dataset", "train")
MAX_VARIANTS = 20_000  # per section; pipeline.sweep plans 10,000 in about 8 s on one core
INDEX_FILE = "index.json"


def load(path):
    """The parsed sweep file; raises ValueError if it cannot be read, is not a mapping or has an unknown section."""
    try:
        with open(path) as f:
            sweep = yaml.safe_load(f)  # YAML is a superset of JSON
    except OSError as e:
        raise ValueError(f"--sweep_file {path} cannot be read: {e}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"--sweep_file {path} is not valid YAML/JSON: {' '.join(str(e).split())}") from None
    if not isinstance(sweep, dict):
        raise ValueError(f"--sweep_file {path} must hold a mapping with 'dataset' and 'train' sections")
    for key in sweep:
        if key not in SECTIONS:
            raise ValueError(f"unknown key {key!r} in the sweep file; expected {' and '.join(SECTIONS)}")
    return sweep


def variants(sweep, section, known_keys=None):
    """base + each combination of the grid, in grid order; raises ValueError naming a bad key."""
    part = sweep.get(section)
    if not isinstance(part, dict):
        raise ValueError(f"the sweep file needs a {section!r} section with 'base' and 'grid'")
    for key in part:
        if key not in ("base", "grid"):
            raise ValueError(f"unknown key {key!r} in {section}; expected base and grid")
    base, grid = part.get("base") or {}, part.get("grid") or {}
    for where, mapping in (("base", base), ("grid", grid)):
        if not isinstance(mapping, dict):
            raise ValueError(f"{section}.{where} must be a mapping of flag names to values")
        for key in mapping:
            if known_keys is not None and key not in known_keys:
                raise ValueError(f"unknown key {key!r} in {section}.{where}; known keys: {', '.join(known_keys)}")
    if not grid:
        raise ValueError(f"{section}.grid is empty: give at least one key with a list of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{section}.grid.{key} must be a non-empty list of values")
    count = math.prod(len(values) for values in grid.values())
    if count > MAX_VARIANTS:
        raise ValueError(f"{section}.grid makes {count:,} variants, more than the {MAX_VARIANTS:,} a sweep may have: "
                         "split it into several sweep files")
    return [dict(base, **dict(zip(grid, combo))) for combo in itertools.product(*grid.values())]


def variant_name(settings, grid_keys):
    """A readable folder name from the grid's values, e.g. length-5_charset-digits."""
    parts = ["%s-%s" % (k, settings[k]) for k in grid_keys]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(parts))[:120]


def index_entry(folder, identity, settings, status, num_records):
    """One variant of index.json, its settings as JSON stores them."""
    return {"folder": folder, "identity": identity, "settings": as_stored(settings), "status": status,
            "num_records": num_records}


def as_stored(settings):
    """`settings` as index.json holds them (JSON types: a tuple becomes a list, other objects strings)."""
    return json.loads(json.dumps(settings, default=str))


def folders_by_settings(index):
    """{settings key: [folders]} of index.json's variants, to look up with `settings_key`; raises ValueError if it
    is not an index. One pass, so resolving a sweep's variants takes linear time."""
    folders = {}
    try:
        for v in index["variants"]:
            folders.setdefault(settings_key(v["settings"]), []).append(v["folder"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"not a sweep index ({e!r})") from None
    return folders


def settings_key(settings):
    """A hashable form of `settings` as index.json stores them."""
    return json.dumps(as_stored(settings), sort_keys=True)
