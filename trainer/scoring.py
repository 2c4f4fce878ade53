"""Evaluates a trained model on a dataset split: metrics JSON, a printed table, a grid of mispredictions.

    python -m trainer.evaluate --model_dir=runs/ctc --data_dir=data/synth --split=test
"""
import json
import os

import numpy as np
import tqdm
from absl import logging

from trainer import data, decoding, metrics, plots, rundir
from trainer.errors import UserError
from trainer.spec import DatasetSpec


def evaluate(model_dir, data_dir, split="test", batch_size=64, decoder=None, verify_shards=True,
             max_error_images=32):
    """Writes model_dir/eval_{split}.json and eval_{split}_errors.png; returns the metrics dict.

    `decoder` defaults to the one the model was trained with (model_dir/config.json). UserError if the model cannot
    read the dataset (charset, image shape, and for a per-position model its label lengths) or a shard of the split
    is missing, corrupt, or holds fewer records than spec.json lists. The result's `run` says whether model_dir's run
    was finished; scoring an unfinished one (killed or still training) logs a warning, and the next best.keras its
    training writes deletes these files.
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got {batch_size}")
    with data.reading(data_dir):
        return _evaluate(model_dir, data_dir, split, batch_size, decoder, verify_shards, max_error_images)


def _evaluate(model_dir, data_dir, split, batch_size, decoder, verify_shards, max_error_images):
    finished = rundir.is_finished(model_dir)
    if not finished:
        logging.warning("%s holds an unfinished run (killed, or still training): scoring its best.keras so far",
                        model_dir)
    model = rundir.load_model(model_dir)
    model_spec = DatasetSpec.load(model_dir)
    data_spec = DatasetSpec.load(data_dir)
    model_spec.check_same_task(data_spec, model_dir)
    charset = data_spec.charset
    if decoding.output_kind(model, charset) != decoding.CTC:
        model_spec.check_label_lengths(model.name, data_spec, model_dir)
    if verify_shards:
        data_spec.verify_shards([split])
    if decoder is None:
        decoder = rundir.read_config(model_dir)["decoder"]

    dataset = data.make_dataset(data_spec, split, batch_size, training=False)
    true_texts, pred_texts, error_images, error_true, error_pred = [], [], [], [], []
    total = -(-data_spec.num_records(split) // batch_size)
    with data.naming_bad_shards(data_spec, [split]):
        for images, labels in tqdm.tqdm(dataset.as_numpy_iterator(), total=total, desc=f"evaluate {split}",
                                        unit="batch"):
            predicted, _ = decoding.predict_text(model, images, charset, decoder)
            expected = decoding.ids_to_texts(labels, charset)
            true_texts += expected
            pred_texts += predicted
            for image, true, pred in zip(images, expected, predicted):
                if true != pred and len(error_images) < max_error_images:
                    error_images.append(image)
                    error_true.append(true)
                    error_pred.append(pred)

    result = metrics.compute_metrics(true_texts, pred_texts)
    result.update(split=split, data_dir=data_dir, decoder=decoder, run="finished" if finished else "unfinished")
    rundir.write_atomic(os.path.join(model_dir, f"eval_{split}.json"), json.dumps(result, indent=2, ensure_ascii=False))
    plots.plot_errors(np.array(error_images), error_true, error_pred,
                      os.path.join(model_dir, f"eval_{split}_errors.png"))
    return result
