"""Trains every (dataset variant x train variant) of a sweep file, then tabulates and plots the results.

    python -m pipeline.sweep --sweep_file=sweeps/lengths.yaml --output_root=data/sweep
    python -m experiments.sweep --sweep_file=sweeps/lengths.yaml --output_root=data/sweep \\
        [--shard_index=0 --num_shards=2]

The sweep file's `dataset` section names variants that pipeline.sweep rendered (found through
OUTPUT_ROOT/index.json by their settings); its `train` section is required, since TrainConfig.model has no
default. Its keys are trainer.main flag names (TrainConfig fields but data_dir and model_dir):

    train:
      base: {epochs: 10, batch_size: 64}
      grid: {model: [cnn, ctc], learning_rate: [0.001, 0.0003]}

Each run trains into OUTPUT_ROOT/runs/<dataset folder>/<grid values>-<hash of its non-default settings>/ and
ends by writing result.json there; runs with a result.json are skipped. With --num_shards=N, machine
--shard_index=I takes runs I, I+N, ... of the same list, so N machines sharing OUTPUT_ROOT split a sweep.
Every machine then writes OUTPUT_ROOT/results.{csv,md,png} from all result.json files present and prints
the Markdown table, one row per finished run:

    | length | charset | model | learning_rate | val_captcha_acc | test_captcha_acc | val_char_acc | ...
    | 4 | digits | cnn | 0.001 | 94.10% | 93.85% | 98.43% | ...

train_images_per_s counts the train steps after the first (input included); train_minutes is the wall time
of trainer.train (export included). Running again after all shards finished trains nothing and rewrites
the complete tables.
"""
import contextlib
import csv
import collections
import dataclasses
import hashlib
import io
import json
import os
import typing

import keras
import tensorflow as tf
from absl import app, flags, logging
from tensorboard.plugins.hparams import api as hparams_api

import sweepfile
from experiments import plots, report
from trainer import command, rundir, train
from trainer.errors import UserError, exit_on_user_error
from trainer.spec import DatasetSpec

RESULT_FILE = "result.json"
# overwrite is how a run starts, not what it trains: not a key, and not in the hash that names run folders.
TRAIN_KEYS = [f.name for f in dataclasses.fields(train.TrainConfig)
              if f.name not in ("data_dir", "model_dir", "overwrite")]
DEFAULTS = dataclasses.asdict(train.TrainConfig(model="", data_dir="", model_dir=""))
METRIC_COLUMNS = ("val_captcha_acc", "test_captcha_acc", "val_char_acc", "test_char_acc", "params",
                  "train_images_per_s", "train_minutes")


@dataclasses.dataclass(frozen=True)
class Run:
    """One training of the sweep: a dataset folder and a TrainConfig."""

    dataset_folder: str  # relative to the output root
    dataset_settings: dict
    train_name: str
    train_settings: dict
    config: train.TrainConfig


def load_sweep(path):
    """The parsed sweep file (sweepfile.load); raises UserError naming what is wrong."""
    with user_errors():
        return sweepfile.load(path)


@contextlib.contextmanager
def user_errors():
    """sweepfile's ValueErrors (a bad key or value of the sweep file or index.json) as UserErrors."""
    try:
        yield
    except ValueError as e:
        raise UserError(str(e)) from None


def _coerce(key, value, annotation):
    """`value` as the type of TrainConfig field `key`; YAML 1.1 reads 1e-3 as a string, so floats accept strings."""
    allowed = typing.get_args(annotation) or (annotation,)
    if value is None and type(None) in allowed:
        return None
    if float in allowed and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    for kind in allowed:
        if isinstance(kind, type) and isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value
    raise UserError(f"train setting {key}: expected {getattr(annotation, '__name__', annotation)}, got {value!r}")


def train_variants(sweep):
    """[(name, settings, TrainConfig without data_dir/model_dir)], each validated like trainer.main's flags."""
    types = {f.name: f.type for f in dataclasses.fields(train.TrainConfig)}
    with user_errors():
        expanded = sweepfile.variants(sweep, "train", TRAIN_KEYS)
    grid_keys = list(sweep["train"]["grid"])
    variants = []
    for settings in expanded:
        settings = {k: _coerce(k, v, types[k]) for k, v in settings.items()}
        name = sweepfile.variant_name(settings, grid_keys)
        if "model" not in settings:
            raise UserError("the train section needs 'model' in base or grid")
        config = train.TrainConfig(data_dir="", model_dir="", **settings)
        try:
            train.check_config(config)
        except UserError as e:
            raise UserError(f"train variant {name}: {e}") from None
        # Only settings that differ from TrainConfig's defaults: a new field (at its default) renames no run folder.
        whole = {k: v for k, v in dataclasses.asdict(config).items() if k in TRAIN_KEYS and v != DEFAULTS.get(k)}
        digest = hashlib.sha256(json.dumps(whole, sort_keys=True).encode()).hexdigest()[:8]
        variants.append((f"{name}-{digest}", settings, config))
    return variants


def dataset_folders(sweep, output_root):
    """[(folder, settings)] for the dataset section, resolved through OUTPUT_ROOT/index.json by equal settings."""
    with user_errors():
        variants = sweepfile.variants(sweep, "dataset")
    render = "render them first with `python -m pipeline.sweep` and the same --sweep_file and --output_root"
    index_path = os.path.join(output_root, sweepfile.INDEX_FILE)
    try:
        with tf.io.gfile.GFile(index_path) as f:
            index = json.load(f)
    except tf.errors.NotFoundError:
        raise UserError(f"{index_path} not found: {render}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{index_path} is not valid JSON: {e}") from None
    with user_errors():
        folders_by_settings = sweepfile.folders_by_settings(index)
    resolved = []
    for settings in variants:
        settings = sweepfile.as_stored(settings)
        folders = folders_by_settings.get(sweepfile.settings_key(settings), [])
        if not folders:
            raise UserError(f"dataset variant {settings} is not in {index_path}: {render}")
        if len(folders) > 1:
            raise UserError(f"dataset variant {settings} matches several folders in {index_path} "
                            f"({', '.join(folders)}): remove the stale entries")
        DatasetSpec.load(os.path.join(output_root, folders[0]))  # fails now, not after hours of other runs
        resolved.append((folders[0], settings))
    return resolved


def plan_runs(sweep, output_root):
    """Every Run of the sweep, dataset-major; raises UserError on a bad sweep file before anything trains."""
    train_list = train_variants(sweep)
    runs = []
    for folder, dataset_settings in dataset_folders(sweep, output_root):
        for name, settings, config in train_list:
            model_dir = os.path.join(output_root, "runs", folder, name)
            runs.append(Run(folder, dataset_settings, name, settings,
                            dataclasses.replace(config, data_dir=os.path.join(output_root, folder),
                                                model_dir=model_dir)))
    twice = next((d for d, n in collections.Counter(r.config.model_dir for r in runs).items() if n > 1), None)
    if twice:
        raise UserError(f"the sweep file gives the run {twice} twice: list each grid value once")
    return runs


def shard_runs(runs, shard_index, num_shards):
    """The runs this machine takes: run k goes to shard k % num_shards."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise UserError(f"need num_shards >= 1 and 0 <= shard_index < num_shards, got {shard_index} of {num_shards}")
    return runs[shard_index::num_shards]


def train_one(run):
    """Trains and evaluates `run` on val and test, then writes its result.json (the mark of a finished run).

    A run whose training finished but which has no result.json (killed while evaluating) is trained again from
    scratch (overwrite); an interrupted one resumes.
    """
    config = dataclasses.replace(run.config, overwrite=rundir.is_finished(run.config.model_dir))
    try:
        measured = report.train_and_score(config, ("val", "test"))
    except UserError as e:
        raise UserError(f"run {config.model_dir}: {e}") from None
    model = keras.models.load_model(os.path.join(config.model_dir, "best.keras"), compile=False)
    result = {
        "dataset_folder": run.dataset_folder, "dataset_settings": run.dataset_settings,
        "train_name": run.train_name, "train_settings": run.train_settings,
        "config": dataclasses.asdict(config), **measured, "params": model.count_params(),
    }
    log_hparams(run, result)
    rundir.write_atomic(os.path.join(config.model_dir, RESULT_FILE), json.dumps(result, indent=2))
    keras.backend.clear_session()  # free the graphs of this run before the next


def log_hparams(run, result):
    """Writes the run's swept settings and its val/test accuracy to its TensorBoard folder (the hparams plugin), so
    `tensorboard --logdir=OUTPUT_ROOT/runs` compares the runs in its HParams tab beside their curves."""
    settings = {**{f"dataset.{k}": v for k, v in run.dataset_settings.items()}, **run.train_settings}
    with tf.summary.create_file_writer(os.path.join(run.config.model_dir, "tensorboard")).as_default():
        hparams_api.hparams({k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
                             for k, v in settings.items()}, trial_id=os.path.basename(run.config.model_dir))
        for key in ("val_captcha_acc", "test_captcha_acc", "val_char_acc", "test_char_acc"):
            tf.summary.scalar(key, result[key], step=0)


def result_columns(sweep):
    """The swept keys as (column, section, key), dataset first; a train key also swept in dataset is train.KEY."""
    dataset_keys = list(sweep["dataset"]["grid"])
    return ([(k, "dataset", k) for k in dataset_keys] +
            [("train." + k if k in dataset_keys else k, "train", k) for k in sweep["train"]["grid"]])


def result_rows(sweep, runs, output_root):
    """One flat dict per run that has a result.json, in run order: swept settings, METRIC_COLUMNS, model_dir."""
    rows = []
    for run in runs:
        path = os.path.join(run.config.model_dir, RESULT_FILE)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                result = json.load(f)
            row = {column: result[f"{section}_settings"][key] for column, section, key in result_columns(sweep)}
            row.update((k, result[k]) for k in METRIC_COLUMNS)
            row["model_dir"] = os.path.relpath(run.config.model_dir, output_root)
            rows.append(row)
    return rows


def write_results(sweep, runs, output_root):
    """Writes results.csv, results.md and results.png from every result.json present; returns (rows, Markdown)."""
    rows = result_rows(sweep, runs, output_root)
    swept = [column for column, _, _ in result_columns(sweep)]
    text = io.StringIO()
    writer = csv.DictWriter(text, swept + list(METRIC_COLUMNS) + ["model_dir"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    table = report.markdown_table(rows, swept + list(METRIC_COLUMNS))
    rundir.write_atomic(os.path.join(output_root, "results.csv"), text.getvalue())  # a reader (or another shard)
    rundir.write_atomic(os.path.join(output_root, "results.md"), table)  # never sees half a file
    rundir.write_atomic(os.path.join(output_root, "results.png"), plots.sweep_png(rows, swept))
    return rows, table


def run_sweep(sweep_file, output_root, shard_index=0, num_shards=1):
    """Trains this shard's unfinished runs one after another, then writes the results of all finished runs.

    Returns {"trained": [model_dir, ...], "skipped": [model_dir, ...], "rows": [...], "table": Markdown}.
    """
    sweep = load_sweep(sweep_file)
    runs = plan_runs(sweep, output_root)
    mine = shard_runs(runs, shard_index, num_shards)
    trained, skipped = [], []
    for i, run in enumerate(mine):
        if tf.io.gfile.exists(os.path.join(run.config.model_dir, RESULT_FILE)):
            skipped.append(run.config.model_dir)
            continue
        logging.info("run %d of %d (shard %d of %d): %s", i + 1, len(mine), shard_index, num_shards,
                     run.config.model_dir)
        train_one(run)
        trained.append(run.config.model_dir)
    rows, table = write_results(sweep, runs, output_root)
    logging.info("trained %d, skipped %d finished; %d of %d runs have results", len(trained), len(skipped),
                 len(rows), len(runs))
    return {"trained": trained, "skipped": skipped, "rows": rows, "table": table}


FLAGS = flags.FLAGS


def define_flags():
    """The command line's flags; defined when run as a program, so importing this module defines none."""
    flags.DEFINE_string("sweep_file", None, "YAML/JSON sweep file with 'dataset' and 'train' sections.")
    flags.DEFINE_string("output_root", None, "Folder pipeline.sweep rendered into; runs/ and results.* go here too.")
    flags.DEFINE_integer("shard_index", 0, "This machine's share of the runs: run k goes to shard k % num_shards.")
    flags.DEFINE_integer("num_shards", 1, "Machines sharing the sweep over a shared filesystem.")
    flags.mark_flags_as_required(["sweep_file", "output_root"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    with exit_on_user_error():
        summary = run_sweep(FLAGS.sweep_file, FLAGS.output_root, FLAGS.shard_index, FLAGS.num_shards)
    print(summary["table"], end="")


run = command.console_script(main, define_flags)  # the `captcha-sweep-train` console script


if __name__ == "__main__":
    run()
