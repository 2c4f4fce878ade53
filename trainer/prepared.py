"""Training images prepared once: where a reader crops each image's text box (`--crop`), the crop and the ink run
once over the train and val splits before training, and tf.data caches their small uint8 output in place of the
stored images; the model trained reads those (trainer.models.build_parts' trainable twin: the jitter and the
architecture), and the reader saved still takes the stored images, crop and ink included.

    python -m trainer.main --model=ctc_wide8 --crop --ink --jitter --input_height=32 --cache \
        --data_dir=data/real --model_dir=runs/real

Why: TextCrop reads the stored image (e.g. 80x460x3) at every step, about a seventh of a CPU training step on wide
frames, to make the same input every epoch; cached, 32x184x1 images also take an eighteenth of the memory. It takes
effect with the cache and without tf.data's augmentation (which acts on stored images); the time it takes counts
against a time budget (trainer.train).
"""
import os

import keras
import numpy as np
import tensorflow as tf

from trainer import data
from trainer.models import preparation

BATCH = 256  # images prepared per call


def applies(config):
    """Whether `config` (a resolved TrainConfig) trains on prepared images."""
    return bool(config.crop and config.cache and not (config.augment or config.colour_augment))


def arrays(spec, split, input_height, ink, limit=None):
    """(uint8 images [N, *input size, channels], int32 labels [N, longest label]): `split` of `spec` (its first `limit`
    records with `limit`) through the crop and, with `ink`, the ink, at `input_height` (trainer.models.preparation,
    in float32 whatever the dtype policy). Kept for the dataset last asked for: the race's readers and the winner's
    rest share one pass."""
    dataset = (os.path.realpath(spec.folder), spec.identity)
    key = (*dataset, split, input_height, ink, limit)
    if key not in _kept:
        for other in [k for k in _kept if k[:2] != dataset]:
            del _kept[other]
        _kept[key] = _prepare(spec, split, input_height, ink, limit)
    return _kept[key]


_kept = {}  # arrays' results, by dataset and settings


def _prepare(spec, split, input_height, ink, limit):
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        prepare = preparation(spec.image_shape, input_height, ink, crop=True)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    images, labels = [], []
    for batch_images, batch_labels in data.make_dataset(spec, split, BATCH, training=False, limit=limit):
        images.append(keras.ops.convert_to_numpy(prepare.predict_on_batch(batch_images.numpy())))
        labels.append(batch_labels.numpy())
    return np.concatenate(images), np.concatenate(labels)


def make_dataset(prepared, batch_size, *, training, seed=None):
    """Batches of (images, labels) from `arrays`' output: endless and shuffled when `training` (every record in the
    shuffle), one ordered pass otherwise, as trainer.data.make_dataset."""
    ds = tf.data.Dataset.from_tensor_slices(prepared)
    if training:
        ds = ds.shuffle(len(prepared[0]), seed=seed).repeat()
    ds = ds.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = not training
    return ds.with_options(options)
