"""Does synthetic pre-training pay on your real captchas? For every render variant of a sweep file, pre-train
`--model=auto` on the renders and fine-tune on the real dataset; beside them, train on the real dataset alone for
as many steps as both stages together; score every reader on the real val and test splits, in one table.

    python -m pipeline.sweep --sweep_file=sweeps/pretrain_swust.yaml --output_root=data/pretrain
    python -m experiments.pretrain_sweep --sweep_file=sweeps/pretrain_swust.yaml --output_root=data/pretrain \
        --real_data=data/real --pretrain_steps=1000 --finetune_steps=1000 --seeds=0,1

The sweep file has a `dataset` section only (render variants with the real dataset's charset: pipeline.sweep
renders them). Budgets are in steps, not seconds: a step costs the same CPU time on renders as on real images of
the same aspect ratio (the model resizes both to its input height), and steps stay comparable on a shared
machine; each reader's wall minutes are in the table as well. Runs go into
OUTPUT_ROOT/pretrain_runs/REAL_IDENTITY/MODEL-P+F/{real_only,VARIANT}/seed_S/ (MODEL: the reader --model=auto picks
for the real set; P+F: the step budgets); a reader with a result.json there is not trained again, so a stopped
sweep continues where it was, and other budgets or another reader start afresh beside it. The tables go to
results.md and results.json in MODEL-P+F/.
"""
import dataclasses
import json
import os
import statistics

import tensorflow as tf
from absl import app, flags, logging

from experiments import report, sweep
from trainer import command, recipe, rundir, train
from trainer.errors import UserError, exit_on_user_error
from trainer.models import build
from trainer.spec import DatasetSpec

STEPS_PER_EPOCH = 100  # validate, and keep the best checkpoint, every 100 steps
REAL_ONLY = "real_only"
RESULT_FILE = "result.json"
PRETRAIN_FILE = "pretrain.json"  # in a pre-training's model_dir once it is trained and scored
METRIC_COLUMNS = ("pretrain_val_captcha_acc", "val_captcha_acc", "test_captcha_acc", "val_char_acc",
                  "test_char_acc", "train_minutes")
MEAN_COLUMNS = ("runs", "val_captcha_acc", "test_captcha_acc", "test_char_acc", "train_minutes")


@dataclasses.dataclass(frozen=True)
class Reader:
    """One reader of the real dataset: trained on it alone (pretrain is None), or pre-trained, then fine-tuned."""

    variant: str  # REAL_ONLY or the render variant's folder
    settings: dict  # the variant's swept dataset settings ({} for REAL_ONLY)
    seed: int
    pretrain: train.TrainConfig | None
    final: train.TrainConfig


def auto_config(data_dir, model_dir, steps, seed, init_from=None):
    """`--model=auto` for exactly `steps` steps (the cosine schedule spans them), validating every 100."""
    if steps < STEPS_PER_EPOCH or steps % STEPS_PER_EPOCH:
        raise UserError(f"step budgets must be positive multiples of {STEPS_PER_EPOCH}, got {steps}")
    return train.TrainConfig(model=recipe.AUTO, data_dir=data_dir, model_dir=model_dir, seed=seed,
                             epochs=steps // STEPS_PER_EPOCH, steps_per_epoch=STEPS_PER_EPOCH, init_from=init_from)


def plan_readers(sweep_file, output_root, real_data, pretrain_steps, finetune_steps, seeds):
    """(folder of the runs, [Reader]); UserError before any training if a variant cannot fine-tune on real_data."""
    parsed = sweep.load_sweep(sweep_file)
    if "train" in parsed:
        raise UserError("experiments.pretrain_sweep trains --model=auto with step budgets from its flags: remove the "
                        "sweep file's train section (it is for experiments.sweep)")
    if not seeds:
        raise UserError("--seeds is empty: give at least one seed")
    real_spec = DatasetSpec.load(real_data)
    variants = sweep.dataset_folders(parsed, output_root)
    for folder, _ in variants:
        rendered = DatasetSpec.load(os.path.join(output_root, folder))
        check_weights_carry(rendered, real_spec, folder, real_data)
    budget = f"{recipe.choose(real_spec)['model']}-{pretrain_steps}+{finetune_steps}"
    runs_root = os.path.join(output_root, "pretrain_runs", real_spec.identity, budget)
    readers = []
    for seed in seeds:
        model_dir = os.path.join(runs_root, REAL_ONLY, f"seed_{seed}")
        readers.append(Reader(REAL_ONLY, {}, seed, None,
                              auto_config(real_data, model_dir, pretrain_steps + finetune_steps, seed)))
        for folder, settings in variants:
            seed_dir = os.path.join(runs_root, folder, f"seed_{seed}")
            pretrain = auto_config(os.path.join(output_root, folder), os.path.join(seed_dir, "pretrain"),
                                   pretrain_steps, seed)
            final = auto_config(real_data, os.path.join(seed_dir, "finetune"), finetune_steps, seed,
                                init_from=pretrain.model_dir)
            readers.append(Reader(folder, settings, seed, pretrain, final))
    return runs_root, readers


def check_weights_carry(rendered, real, folder, real_data):
    """UserError unless the reader `--model=auto` pre-trains on the `rendered` spec can fine-tune on the `real` one:
    the same charset, and weights of the same shapes in the reader built for each (finetune.set_weights' rule)."""
    if rendered.charset != real.charset:
        raise UserError(f"render variant {folder} has the charset {rendered.charset!r}, {real_data} has "
                        f"{real.charset!r}: render with --charset={real.charset} (and --case_insensitive where the "
                        "real labels are folded to lower case)")
    name = recipe.choose(rendered)["model"]
    try:
        shapes = [[tuple(w.shape) for w in build(name, spec.image_shape, len(spec.charset), spec.label_lengths,
                                                 recipe.INPUT_HEIGHT).weights] for spec in (rendered, real)]
    except ValueError as e:  # the reader cannot read the real labels at all
        shapes = [None, str(e)]
    if shapes[0] != shapes[1]:
        raise UserError(f"the {name} reader pre-trained on render variant {folder} would not fit {real_data} (its "
                        "weights depend on the image size or label length): render at the real images' aspect ratio "
                        "and label lengths")


def steps(config):
    """The number of steps `config` trains."""
    return config.epochs * config.steps_per_epoch


def setting_cell(value):
    """A swept setting as a table cell: lists comma-joined, font files by their names."""
    if isinstance(value, list):
        return ",".join(os.path.basename(str(v)) for v in value)
    return value


def fresh_or_resumed(config):
    """`config` set to resume an interrupted run, or to start over in a model_dir holding a finished one."""
    return dataclasses.replace(config, overwrite=rundir.is_finished(config.model_dir))


def pretrain(config):
    """Pre-trains `config` unless its PRETRAIN_FILE says it was done; returns that file's content: the wall minutes
    and the renders' val accuracy."""
    path = os.path.join(config.model_dir, PRETRAIN_FILE)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    done = report.train_and_score(fresh_or_resumed(config), ("val",))
    done = {"train_minutes": done["train_minutes"], "val_captcha_acc": done["val_captcha_acc"]}
    rundir.write_atomic(path, json.dumps(done))
    return done


def train_reader(reader):
    """Trains the reader (a finished pre-training is reused), scores it on the real val and test splits and writes
    its result.json (report's result row, with the variant and the pre-training); returns it."""
    pretrained = pretrain(reader.pretrain) if reader.pretrain else {"train_minutes": 0.0, "val_captcha_acc": None}
    measured = report.train_and_score(fresh_or_resumed(reader.final), ("val", "test"))
    result = {"variant": reader.variant, "settings": reader.settings, "seed": reader.seed, **measured,
              "pretrain_val_captcha_acc": pretrained["val_captcha_acc"],
              "train_minutes": pretrained["train_minutes"] + measured["train_minutes"],
              "pretrain_steps": steps(reader.pretrain) if reader.pretrain else 0, "steps": steps(reader.final)}
    rundir.write_atomic(os.path.join(reader.final.model_dir, RESULT_FILE), json.dumps(result, indent=2))
    return result


def tables(results):
    """(Markdown table of every reader, Markdown table of the means over seeds per variant), real_only first; a
    variant is named by its dataset identity, beside the settings that differ between variants."""
    rendered = [r["settings"] for r in results if r["variant"] != REAL_ONLY]
    keys = [k for k in dict.fromkeys(k for settings in rendered for k in settings)
            if len({json.dumps(settings.get(k)) for settings in rendered}) > 1]

    def name(result):
        return result["variant"] if result["variant"] == REAL_ONLY else result["variant"].rsplit("-", 1)[-1]

    rows = [{"variant": name(r), **{k: setting_cell(r["settings"].get(k)) for k in keys}, "seed": r["seed"],
             **{c: r[c] for c in METRIC_COLUMNS}} for r in results]
    means = []
    for variant in dict.fromkeys(r["variant"] for r in results):
        mine = [r for r in results if r["variant"] == variant]
        means.append({"variant": name(mine[0]), **{k: setting_cell(mine[0]["settings"].get(k)) for k in keys},
                      "runs": len(mine), **{c: statistics.mean(r[c] for r in mine) for c in MEAN_COLUMNS[1:]}})
    return (report.markdown_table(rows, ["variant", *keys, "seed", *METRIC_COLUMNS]),
            report.markdown_table(means, ["variant", *keys, *MEAN_COLUMNS]))


def run_pretrain_sweep(sweep_file, output_root, real_data, pretrain_steps, finetune_steps, seeds):
    """Trains every reader not yet finished, then writes and returns the two tables (see `tables`)."""
    runs_root, readers = plan_readers(sweep_file, output_root, real_data, pretrain_steps, finetune_steps, seeds)
    results = []
    for i, reader in enumerate(readers):
        path = os.path.join(reader.final.model_dir, RESULT_FILE)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                results.append(json.load(f))
            continue
        logging.info("reader %d of %d: %s, seed %d", i + 1, len(readers), reader.variant, reader.seed)
        try:
            results.append(train_reader(reader))
        except UserError as e:
            raise UserError(f"reader {reader.final.model_dir}: {e}") from None
    order = list(dict.fromkeys(reader.variant for reader in readers))  # real_only, then the sweep file's order
    ordered = sorted(results, key=lambda r: (order.index(r["variant"]), r["seed"]))
    every, means = tables(ordered)
    rundir.write_atomic(os.path.join(runs_root, "results.md"), every + "\n" + means)
    rundir.write_atomic(os.path.join(runs_root, "results.json"), json.dumps(ordered, indent=2))
    return every, means


FLAGS = flags.FLAGS


def define_flags():
    """The command line's flags; defined when run as a program, so importing this module defines none."""
    flags.DEFINE_string("sweep_file", None, "Sweep file whose dataset section lists the render variants.")
    flags.DEFINE_string("output_root", None, "Folder pipeline.sweep rendered the variants into; runs go here too.")
    flags.DEFINE_string("real_data", None, "The real dataset (pipeline.main --source=images) to fine-tune on.")
    flags.DEFINE_integer("pretrain_steps", 1000, "Steps on the renders, a multiple of 100.")
    flags.DEFINE_integer("finetune_steps", 1000, "Steps on the real dataset after pre-training, a multiple of 100; "
                                                 "the real-only readers train pretrain_steps + finetune_steps.")
    flags.DEFINE_list("seeds", ["0"], "One reader per variant and seed.")
    flags.mark_flags_as_required(["sweep_file", "output_root", "real_data"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    with exit_on_user_error():
        try:
            seeds = [int(s) for s in FLAGS.seeds]
        except ValueError:
            raise UserError(f"--seeds must be integers, got {','.join(FLAGS.seeds)}") from None
        every, means = run_pretrain_sweep(FLAGS.sweep_file, FLAGS.output_root, FLAGS.real_data,
                                          FLAGS.pretrain_steps, FLAGS.finetune_steps, seeds)
    print(every + "\n" + means, end="")


run = command.console_script(main, define_flags)  # the `captcha-pretrain-sweep` console script


if __name__ == "__main__":
    run()
