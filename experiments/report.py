"""What experiments.sweep, .protocol, .real_benchmark and .pretrain_sweep share: one "train, then measure" path whose
result rows have one schema (`score`'s keys and TRAIN_KEYS), and one Markdown table whose cells are written the same
way for the same kind of figure (the column name says which).

    from experiments import report
    row = report.train_and_score(config, splits=("val", "test"))   # {"val_captcha_acc": ..., "train_minutes": ...}
    print(report.markdown_table([row], ["test_captcha_acc", "train_minutes"]))
"""
import time

from trainer import callbacks, scoring, train

# The result row of a trained and scored model: whole-captcha and character accuracy and the number of examples
# of each split scored ({split}_captcha_acc, {split}_char_acc, {split}_examples), then how it trained.
TRAIN_KEYS = ("train_images_per_s", "train_minutes", "epochs_run", "steps")


def score(model_dir, data_dir, splits, verify_shards=True):
    """{SPLIT_captcha_acc, SPLIT_char_acc, SPLIT_examples} of model_dir's best model on each split of data_dir (each
    evaluation also writes eval_SPLIT.json and its error grid into model_dir, scoring.evaluate)."""
    row = {}
    for split in splits:
        result = scoring.evaluate(model_dir, data_dir, split, verify_shards=verify_shards)
        row.update({f"{split}_captcha_acc": result["captcha_acc"], f"{split}_char_acc": result["char_acc"],
                    f"{split}_examples": result["num_examples"]})
    return row


def train_and_score(config, splits=("val", "test"), extra_callbacks=()):
    """Trains `config` (train_timed), then scores its best model on `splits` of its dataset: one result row, the
    keys of `score` and TRAIN_KEYS."""
    throughput = callbacks.TrainThroughput(config.batch_size)
    history, images_per_s, minutes = train_timed(config, extra_callbacks, throughput)
    return {**score(config.model_dir, config.data_dir, splits, config.verify_shards),
            **dict(zip(TRAIN_KEYS, (images_per_s, minutes, len(history.epoch), throughput.steps + 1)))}


def train_timed(config, extra_callbacks=(), throughput=None):
    """Trains `config` (trainer.train.train_and_evaluate, `extra_callbacks` after ours); returns (History, train
    images/s after the first step with input included, wall minutes of the whole training, export included).
    `throughput` (a callbacks.TrainThroughput) is the one that times it, for a caller that wants its steps too."""
    throughput = throughput or callbacks.TrainThroughput(config.batch_size)
    started = time.perf_counter()
    history = train.train_and_evaluate(config, extra_callbacks=[throughput, *extra_callbacks])
    return history, throughput.images_per_second(), (time.perf_counter() - started) / 60


def cell(column, value):
    """One table cell: accuracies (`*_acc`) in percent with 2 decimals, parameters in millions, rates (`*_per_s*`)
    whole, minutes and MB with 1 decimal, MACs in millions; '-' where not measured."""
    if value is None:
        return "-"
    if column.endswith("_acc"):
        return f"{100 * value:.2f}%"
    if column == "params":
        return f"{value / 1e6:.2f}M"
    if "_per_s" in column:
        return f"{value:.0f}"
    if column.endswith(("_minutes", "_mb")):
        return f"{value:.1f}"
    if column == "mmacs":
        return f"{value:.0f}M"
    return str(value).replace("|", "\\|")


def markdown_table(rows, columns):
    """A Markdown table of `rows` (dicts) with one column per key in `columns`, header included."""
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(c, row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
