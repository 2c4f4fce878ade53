"""Real-captcha benchmark: for every labelled set under a folder, ingest, train `--model=auto` for a fixed time,
evaluate the test split, and read the same test images with the zero-shot `ddddocr` library.

    python -m experiments.real_benchmark --real_root=../shared/real --output_root=runs/real --train_minutes=20

A set is every folder that holds images. Its labels come from a labels file in it (labels.csv, .tsv or .txt),
else from each file name up to its first `_` or `.` (--label_regex). Labels are read case-insensitively
(pipeline `--case_insensitive`), and so is ddddocr. Prints one Markdown table and writes it, with one JSON row
per set, into OUTPUT_ROOT/results.md and results.json; each set's misreads are in
OUTPUT_ROOT/runs/SET/eval_test.json and eval_test_errors.png. ddddocr is optional (`pip install -e '.[peers]'`).
With it, `disputed_labels` counts the test images that our exported reader and ddddocr read alike but not as
labelled (listed in OUTPUT_ROOT/runs/SET/disputed_labels.csv): likely wrong labels, which no reader can match.

How many labels does a set need? With --label_counts, each set also trains on the first N train images only
(`--train_examples`, the same images every run) for each N, at the same budget, and is scored on the same test
split; "all" (or any N beyond the train split) is the benchmark's own row. Rows gain `train_examples`; OUTPUT_ROOT/label_counts.png plots test accuracy
against N, one line per set:

    python -m experiments.real_benchmark --real_root=../shared/real --output_root=runs/labels --train_minutes=20 \
      --label_counts=250,500,1000,2000,all
"""
import csv
import importlib.util
import io
import json
import os
import subprocess
import sys

import keras
import tensorflow as tf
from absl import app, flags, logging

from experiments import plots, report
from trainer import command, metrics, rundir, serving, train
from trainer.errors import UserError, exit_on_user_error
from trainer.spec import DatasetSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
LABEL_FILES = ("labels.csv", "labels.tsv", "labels.txt")
DEFAULT_LABEL_REGEX = r"^([^_.]+)"
COLUMNS = ("set", "images", "test_examples", "test_captcha_acc", "test_char_acc", "train_minutes",
           "train_images_per_s", "steps", "ddddocr_captcha_acc", "disputed_labels")
LABEL_COUNT_COLUMNS = ("set", "train_examples", "test_examples", "test_captcha_acc", "test_char_acc", "steps")
ALL = "all"

FLAGS = flags.FLAGS


def define_flags():
    """The command line's flags; defined when run as a program, so importing this module defines none."""
    flags.DEFINE_string("real_root", None, "Folder of labelled real captcha sets (one folder of images per set).")
    flags.DEFINE_string("output_root", "runs/real_benchmark", "Where datasets, runs and results are written.")
    flags.DEFINE_float("train_minutes", 20, "Training time per set (--model=auto --time_budget).")
    flags.DEFINE_string("label_regex", DEFAULT_LABEL_REGEX, "Label from the file name, for sets without a labels file.")
    flags.DEFINE_list("sets", None, "Only these sets (paths relative to --real_root), in this order.")
    flags.DEFINE_bool("peers", True, "Also read each test split with ddddocr, where it is installed.")
    flags.DEFINE_list("label_counts", None, "Also train each set on only its first N train images, for each N "
                      "(positive integers, or 'all'): test accuracy against the number of labels.")
    flags.mark_flag_as_required("real_root")


def find_sets(real_root):
    """{name: ingest arguments} for each folder under real_root that holds images, sorted by name."""
    if not os.path.isdir(real_root):
        raise UserError(f"--real_root {real_root} is not a folder")
    sets = {}
    for folder, _, files in sorted(os.walk(real_root)):
        if not any(f.lower().endswith(IMAGE_SUFFIXES) for f in files):
            continue
        name = os.path.relpath(folder, real_root).replace(os.sep, "/")
        labels = [f for f in LABEL_FILES if f in files]
        sets[name] = [f"--input={os.path.join(folder, labels[0])}"] if labels else [f"--input={folder}"]
    if not sets:
        raise UserError(f"--real_root {real_root} holds no folder of images")
    return sets


def ingest(input_args, data_dir, label_regex):
    """Runs the pipeline's images source in a subprocess (the trainer never imports the pipeline)."""
    command = [sys.executable, "-m", "pipeline.main", "--source=images", "--case_insensitive",
               f"--output_dir={data_dir}", *input_args]
    if not input_args[0].endswith(LABEL_FILES):
        command.append(f"--label_regex={label_regex}")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"ingest of {input_args[0]} failed: {done.stderr.strip().splitlines()[-1]}")


def test_images(spec):
    """[(encoded image bytes, label)] of the test split, in record order."""
    features = spec.parse_spec(("image", "text"))
    records = tf.data.TFRecordDataset(spec.shard_paths("test"))
    return [(r["image"].numpy(), r["text"].numpy().decode())
            for r in records.map(lambda x: tf.io.parse_single_example(x, features))]


def ddddocr_installed():
    return importlib.util.find_spec("ddddocr") is not None


def ddddocr_read(images):
    """ddddocr's lower-cased reading of each encoded image; None if it is not installed."""
    if not ddddocr_installed():
        return None
    import ddddocr  # noqa: PLC0415 (an optional peer, imported only when measured)
    reader = ddddocr.DdddOcr(show_ad=False)
    return [reader.classification(image).lower() for image in images]


def saved_model_read(model_dir, images, batch_size=64):
    """The run's exported SavedModel's reading of each encoded image (what a user's server would answer)."""
    signature = serving.load_signature(model_dir)
    texts = []
    for start in range(0, len(images), batch_size):
        out = signature(images=tf.constant(images[start:start + batch_size]))
        texts += [text.decode() for text in out["text"].numpy()]
    return texts


def disputed_labels(labels, ours, theirs):
    """[(record, label, reading)] where our reading and ddddocr's agree with each other but not with the label: two
    independent readers against one label, most likely a wrong label (check the image)."""
    return [(i, label, read) for i, (label, read, other) in enumerate(zip(labels, ours, theirs))
            if read != label and read == other]


def parse_label_counts(values):
    """--label_counts' values -> [int or None (all)]; UserError on anything else."""
    counts = []
    for value in values or ():
        if value == ALL:
            counts.append(None)
        elif value.isdigit() and int(value) > 0:
            counts.append(int(value))
        else:
            raise UserError(f"--label_counts takes positive integers or '{ALL}', got {value!r}")
    return counts


def train_set(data_dir, model_dir, train_minutes, train_examples=None):
    """Trains `--model=auto` on data_dir for the budget (on its first `train_examples` train images if given) and
    scores the test split: report.train_and_score's row."""
    keras.backend.clear_session()
    config = train.TrainConfig(model="auto", data_dir=data_dir, model_dir=model_dir, time_budget=train_minutes * 60,
                               seed=0, overwrite=True, train_examples=train_examples)
    return report.train_and_score(config, ("test",))


def label_count_rows(name, data_dir, output_root, train_minutes, counts, whole_row):
    """One row per label count of one set, trained into OUTPUT_ROOT/runs/labels-N/SET; a count that reaches the
    whole train split (ALL, or more) is the set's benchmark row `whole_row`, not trained again; counts that come to
    the same number of images are one row."""
    rows = []
    train_records = DatasetSpec.load(data_dir).num_records("train")
    for count in sorted(set(min(count or train_records, train_records) for count in counts)):
        if count == train_records:
            rows.append({**whole_row, "train_examples": train_records})
            continue
        logging.info("%s on %d labelled train images", name, count)
        model_dir = os.path.join(output_root, "runs", f"labels-{count}", name)
        rows.append({"set": name, "train_examples": count, **train_set(data_dir, model_dir, train_minutes, count)})
    return rows


def benchmark_set(name, input_args, output_root, train_minutes, label_regex, peers):
    """Ingests, trains and evaluates one set, reads its test images with ddddocr and lists the labels both readers
    dispute (OUTPUT_ROOT/runs/SET/disputed_labels.csv); returns its result row."""
    data_dir = os.path.join(output_root, "data", name)
    model_dir = os.path.join(output_root, "runs", name)
    ingest(input_args, data_dir, label_regex)
    spec = DatasetSpec.load(data_dir)
    measured = train_set(data_dir, model_dir, train_minutes)
    row = {"set": name, "images": spec.num_files, **measured, "ddddocr_captcha_acc": None, "disputed_labels": None}
    theirs = None
    if peers:
        images, labels = zip(*test_images(spec))
        theirs = ddddocr_read(images)
    if theirs is not None:
        labels = [label.lower() for label in labels]
        row["ddddocr_captcha_acc"] = metrics.compute_metrics(labels, theirs)["captcha_acc"]
        disputed = disputed_labels(labels, saved_model_read(model_dir, list(images)), theirs)
        row["disputed_labels"] = len(disputed)
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["test_record", "label", "read_by_both"])
        writer.writerows(disputed)
        rundir.write_atomic(os.path.join(model_dir, "disputed_labels.csv"), text.getvalue())
    return row


def run_benchmark(real_root, output_root, train_minutes, label_regex=DEFAULT_LABEL_REGEX, only=None, peers=True,
                  label_counts=()):
    """Benchmarks every set (or those in `only`, in its order), then, for each of `label_counts` (ints, None for
    all), trains it again on that many train images; writes results.md and results.json (after each set, so a
    stopped benchmark keeps the rows it finished), and label_counts.md, .json and .png; returns (rows, label count
    rows)."""
    sets = find_sets(real_root)
    unknown = sorted(set(only or ()) - set(sets))
    if unknown:
        raise UserError(f"--sets {', '.join(unknown)} not found under {real_root}; sets: {', '.join(sets)}")
    rows, count_rows = [], []
    for name in only or sets:
        logging.info("benchmarking %s", name)
        rows.append(benchmark_set(name, sets[name], output_root, train_minutes, label_regex, peers))
        rundir.write_atomic(os.path.join(output_root, "results.json"), json.dumps(rows, indent=2))
        if label_counts:
            count_rows += label_count_rows(name, os.path.join(output_root, "data", name), output_root, train_minutes,
                                           label_counts, rows[-1])
            rundir.write_atomic(os.path.join(output_root, "label_counts.json"), json.dumps(count_rows, indent=2))
    rundir.write_atomic(os.path.join(output_root, "results.md"), report.markdown_table(rows, COLUMNS))
    if count_rows:
        rundir.write_atomic(os.path.join(output_root, "label_counts.md"),
                            report.markdown_table(count_rows, LABEL_COUNT_COLUMNS))
        plots.plot_label_counts(count_rows, os.path.join(output_root, "label_counts.png"))
    return rows, count_rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    with exit_on_user_error():
        if FLAGS.peers and not ddddocr_installed():
            print("ddddocr not installed: its column is skipped (pip install -e '.[peers]')", file=sys.stderr)
        counts = parse_label_counts(FLAGS.label_counts)
        rows, count_rows = run_benchmark(FLAGS.real_root, FLAGS.output_root, FLAGS.train_minutes, FLAGS.label_regex,
                                         FLAGS.sets, FLAGS.peers, counts)
    print(report.markdown_table(rows, COLUMNS), end="")
    if count_rows:
        print(report.markdown_table(count_rows, LABEL_COUNT_COLUMNS), end="")


run = command.console_script(main, define_flags)  # the `captcha-real-benchmark` console script


if __name__ == "__main__":
    run()
