"""A validation race inside `--model=auto`, where the dataset does not decide the reader: each candidate trains for
SHARE of the time budget into MODEL_DIR/race/NAME, the best on the val split goes on from its race checkpoint for
the rest of the budget (`--init_from` of its race run, so no step of it is lost), and the race is logged and kept
in MODEL_DIR/race/results.json.

    python -m trainer.main --model=auto --data_dir=data/mine --model_dir=runs/mine --time_budget=1200

The best is the highest val_captcha_acc; ties (early in a race every candidate may read 0% whole) go to the first
candidate, recipe.RACE_MODELS' order. A killed run keeps its finished race runs and does not race them again (with
--overwrite it does).
"""
import csv
import dataclasses
import io
import json
import os

import tensorflow as tf
from absl import logging

from trainer import rundir

SHARE = 0.1  # of the time budget, per candidate
RACE_DIR = "race"


def best_val_accuracy(model_dir):
    """The best val_captcha_acc in model_dir's log.csv (0.0 before its first epoch ended)."""
    path = os.path.join(model_dir, "log.csv")
    if not tf.io.gfile.exists(path):
        return 0.0
    with tf.io.gfile.GFile(path) as f:
        return max((float(row["val_captcha_acc"]) for row in csv.DictReader(io.StringIO(f.read()))
                    if row.get("val_captcha_acc")), default=0.0)


def run(config, candidates, train_fn):
    """Races `candidates` (registry names) with the resolved `config` (each with its own model, the same other
    settings) through `train_fn` (trainer.train.train_and_evaluate); returns the config that goes on: the winner,
    from its race run, for what is left of the budget."""
    share = SHARE * config.time_budget
    results = []
    for name in candidates:
        race_dir = os.path.join(config.model_dir, RACE_DIR, name)
        if config.overwrite or not rundir.is_finished(race_dir):
            train_fn(dataclasses.replace(config, model=name, model_dir=race_dir, time_budget=share))
        results.append({"model": name, "val_captcha_acc": best_val_accuracy(race_dir), "seconds": share})
    winner = max(results, key=lambda r: r["val_captcha_acc"])  # max keeps the first of ties
    rest = config.time_budget - share * len(candidates)
    logging.info("race after %.0f s each: %s; %s goes on for %.0f s", share,
                 ", ".join(f"{r['model']} {r['val_captcha_acc']:.2%}" for r in results), winner["model"], rest)
    rundir.write_atomic(os.path.join(config.model_dir, RACE_DIR, "results.json"),
                        json.dumps({"winner": winner["model"], "candidates": results}, indent=2))
    return dataclasses.replace(config, model=winner["model"], time_budget=rest,
                               init_from=os.path.join(config.model_dir, RACE_DIR, winner["model"]))
