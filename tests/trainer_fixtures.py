"""Shared data for the trainer tests: tiny datasets rendered by the real pipeline and runs trained on them.

Test modules import the fixtures (`from trainer_fixtures import fixed_dataset`); each dataset is rendered, and each
run trained, once per pytest run even when several modules and both xdist workers use it (`once_per_run`).
"""
import fcntl
import functools
import json
import os
import shutil
import time

import pytest

from pipeline.main import run as run_pipeline
from trainer import train

CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@functools.cache
def _render(output_dir, *args):
    run_pipeline([f"--output_dir={output_dir}", "--seed=1", "--direct_num_workers=1", *args])
    return output_dir


def once_per_run(tmp_path_factory, name, build):
    """build(folder) -> a JSON value, run by the first xdist worker that asks; the other waits, then reads the value.
    pytest-xdist's recipe for session fixtures, with fcntl's lock in place of the filelock package it uses."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder that both workers' base folders share
    done = root / f"{name}.json"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            folder = root / name
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build of the other worker left
            done.write_text(json.dumps(build(folder)))
        return json.loads(done.read_text())


@pytest.fixture(scope="session")
def fixed_dataset(tmp_path_factory):
    """Labels of 4 characters, 2 shards per split: train 48, val 16, test 16."""
    return once_per_run(tmp_path_factory, "fixed_dataset", lambda folder: _render(
        str(folder), "--train_size=48", "--val_size=16", "--test_size=16", "--num_shards=2"))


@pytest.fixture(scope="session")
def variable_dataset(tmp_path_factory):
    """Labels of 4 to 6 characters, 1 shard per split: train 16, val 8, test 8."""
    return once_per_run(tmp_path_factory, "variable_dataset", lambda folder: _render(
        str(folder), "--train_size=16", "--val_size=8", "--test_size=8", "--min_length=4", "--max_length=6"))


def _train_cnn_and_ctc(folder, fixed_dataset, variable_dataset):
    result = {}
    for name, data_dir in (("cnn", fixed_dataset), ("ctc", variable_dataset)):
        model_dir = str(folder / name)
        history = train.train_and_evaluate(train.TrainConfig(model=name, data_dir=data_dir, model_dir=model_dir,
                                                             batch_size=8, epochs=2, steps_per_epoch=2, seed=0))
        assert history.epoch == [0, 1]
        result[name] = (model_dir, data_dir)
    return result


@pytest.fixture(scope="session")
def trained(fixed_dataset, variable_dataset, tmp_path_factory):
    """model name -> (model_dir, data_dir) of finished 2-epoch runs: cnn on fixed_dataset, ctc on variable_dataset."""
    runs = once_per_run(tmp_path_factory, "trained",
                        lambda folder: _train_cnn_and_ctc(folder, fixed_dataset, variable_dataset))
    return {name: tuple(run) for name, run in runs.items()}


def copy_dataset(src, dst):
    """A writable copy of a dataset folder, to corrupt."""
    shutil.copytree(src, dst)
    return str(dst)


class FakeTime:
    """Stands in for the time module of trainer.callbacks (monkeypatch.setattr(callbacks, "time", FakeTime())): a
    monotonic clock that the test moves by hand, so time budgets run the same on a busy machine."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    perf_counter = staticmethod(time.perf_counter)
