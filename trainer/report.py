"""What trainer.sweep, trainer.protocol and trainer.real_benchmark share: one timed training and one Markdown table
whose cells are written the same way for the same kind of figure (the column name says which).

    from trainer import report
    history, images_per_s, minutes = report.train_timed(config)
    print(report.markdown_table(rows, ["model", "test_captcha_acc", "train_minutes"]))
"""
import time

from trainer import callbacks, train


def train_timed(config, extra_callbacks=()):
    """Trains `config` (trainer.train.train_and_evaluate, `extra_callbacks` after ours); returns (History, train
    images/s after the first step with input included, wall minutes of the whole training, export included)."""
    throughput = callbacks.TrainThroughput(config.batch_size)
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
