"""The tf.data input pipeline: a split's TFRecord shards -> batches of (uint8 images, int32 labels).

Records are parsed by the schema of the dataset's spec.json ("features", trainer.spec.DatasetSpec.parse_spec).
Images stay uint8 up to the model, which scales them to [0, 1] itself (trainer.models.build): a batch crosses to
the accelerator at a quarter of float32's bytes. Labels are the charset indices of each character, padded with PAD
(-1) to the spec's longest label length. Keras 3 `fit` takes these datasets on every backend; under JAX or PyTorch,
TensorFlow is kept off the GPUs, which belong to the backend (tf.data runs on the host anyway).
"""
import contextlib
import functools
import os

import keras
import tensorflow as tf

from safeio import locks
from trainer import augment as augment_lib
from trainer.decoding import PAD
from trainer.errors import UserError

if keras.backend.backend() != "tensorflow":
    tf.config.set_visible_devices([], "GPU")
# Records decoded per parse_example call when filling the in-memory cache.
_CACHE_PARSE_BATCH = 256


def decode_image(encoded, image_shape):
    """Encoded PNG/JPEG/GIF/BMP bytes of `image_shape`'s size -> uint8 [height, width, channels], converted to its
    channels; another size is an InvalidArgumentError (serving resizes: trainer.preprocess)."""
    image = tf.io.decode_image(encoded, channels=image_shape[2], expand_animations=False)
    return tf.ensure_shape(image, image_shape)


def augment_uint8(images, jitter=True, colour=False):
    """trainer.augment's random jitter and/or colour on uint8 images [B, H, W, C], rounded back to uint8."""
    images = tf.cast(images, tf.float32) / 255.0
    if colour:
        images = augment_lib.colour(images)
    if jitter:
        images = augment_lib.augment(images)
    return tf.saturate_cast(tf.round(images * 255.0), tf.uint8)


def parse_batch(serialized, spec):
    """A batch of serialized tf.train.Examples, parsed by the schema of `spec` (a trainer.spec.DatasetSpec) -> (uint8
    images [B, H, W, C], int32 labels [B, spec.max_label_length])."""
    image_shape, max_label_length = spec.image_shape, spec.max_label_length
    features = tf.io.parse_example(serialized, spec.parse_spec())
    images = tf.map_fn(lambda b: decode_image(b, image_shape), features["image"],
                       fn_output_signature=tf.TensorSpec(image_shape, tf.uint8))  # 10 decodes in parallel in graphs
    labels = tf.cast(tf.sparse.to_dense(features["label"], default_value=PAD), tf.int32)
    labels = tf.pad(labels, [[0, 0], [0, max_label_length - tf.shape(labels)[1]]], constant_values=PAD)
    return images, tf.ensure_shape(labels, [None, max_label_length])


def make_dataset(spec, split, batch_size, *, training, cache=False, shuffle_buffer=10_000, seed=None,
                 augment=False, colour_augment=False, limit=None):
    """Batches of (images, labels) from `split` of `spec` (a trainer.spec.DatasetSpec); endless and shuffled when
    `training`, one ordered pass otherwise. With `limit`, only the split's first `limit` records, in shard order
    (the same records every epoch and every run: "what if I had only labelled this many?").

    With `augment`, every image is randomly jittered each time it is read (trainer.augment), with `colour_augment`
    recoloured (RGB images only); labels are unchanged.
    """
    files = spec.shard_paths(split)
    if spec.num_records(split) == 0 or not files:
        raise UserError(f"split {split!r} of {spec.folder} has no records")
    parse = functools.partial(parse_batch, spec=spec)

    if limit is not None and limit < spec.num_records(split):
        ds = tf.data.TFRecordDataset(files).take(limit)  # read in order, so the same records every time
    else:
        ds = tf.data.Dataset.from_tensor_slices(files)
        if training:
            ds = ds.shuffle(len(files), seed=seed)  # a different shard order each epoch
        # Read shards in parallel; eval order stays fixed via options.deterministic below.
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 16),
                           num_parallel_calls=tf.data.AUTOTUNE)
    if not training and limit is None:  # one pass: a shard that lost records fails it at its end (naming_bad_shards names the shard)
        ds = ds.apply(tf.data.experimental.assert_cardinality(spec.num_records(split)))
    if cache:
        # Decode once, keep uint8 images in memory (4x smaller than float32); unbatch so shuffling mixes records.
        ds = ds.batch(_CACHE_PARSE_BATCH).map(parse, num_parallel_calls=tf.data.AUTOTUNE).unbatch().cache()
    if training:
        ds = ds.shuffle(min(shuffle_buffer, spec.num_records(split)), seed=seed)  # records, not batches
        ds = ds.repeat()  # endless: fit's steps_per_epoch defines an epoch, batches never straddle a short tail
    # Batch before parsing: parse_example on a batch is several times faster than per record.
    ds = ds.batch(batch_size, drop_remainder=training, num_parallel_calls=tf.data.AUTOTUNE)
    if not cache:
        ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if augment or colour_augment:  # after the cache, so each epoch sees new jitter; on batches: a few ops per batch
        if colour_augment and spec.image_shape[2] != 3:
            raise UserError(f"--colour_augment needs RGB images; {spec.folder} has {spec.image_shape[2]} channel(s)")
        ds = ds.map(lambda images, labels: (augment_uint8(images, augment, colour_augment), labels),
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)  # overlap input with the train step
    options = tf.data.Options()
    options.deterministic = not training  # training may take whichever element is ready first
    return ds.with_options(options)


def find_bad_shard(spec, splits):
    """Reads and decodes every record of `splits`; returns a one-line description of the first shard that cannot be
    read, holds a record that does not decode, or holds another number of records than spec.json lists; else None."""
    for split in splits:
        for shard, path in zip(spec.shards(split), spec.shard_paths(split)):
            name, count = f"shard {shard.file} of {spec.folder}", 0
            try:
                for batch in tf.data.TFRecordDataset(path).batch(_CACHE_PARSE_BATCH):
                    try:
                        parse_batch(batch, spec)
                    except tf.errors.InvalidArgumentError:
                        for i, record in enumerate(batch):  # which record
                            try:
                                parse_batch(record[None], spec)
                            except tf.errors.InvalidArgumentError as e:
                                return f"record {count + i} of {name} does not decode: {first_line(e)}"
                    count += len(batch)
            except (tf.errors.DataLossError, tf.errors.NotFoundError) as e:
                return f"cannot read {name} after record {count}: {first_line(e)}"
            if count != shard.num_records:
                return f"{name} holds {count} records, spec.json lists {shard.num_records}"
    return None


def first_line(error):
    """A TensorFlow error's own message, without the op names and graph node dump around it."""
    message = error.message.strip().splitlines()[0]
    message = message.split("}} ", 1)[-1]  # "{{function_node __wrapped__...}} corrupted record at 12 [Op:...]"
    return message.split(" [Op:", 1)[0].strip()


@contextlib.contextmanager
def naming_bad_shards(spec, splits):
    """Turns an error met while reading `splits` (a corrupt, missing or shortened shard, a record that does not
    decode) into a one-line UserError naming the shard; errors the shards do not explain pass unchanged."""
    try:
        yield
    except (tf.errors.DataLossError, tf.errors.NotFoundError, tf.errors.InvalidArgumentError,
            tf.errors.FailedPreconditionError) as e:
        problem = find_bad_shard(spec, splits)
        if problem is None:
            raise
        raise UserError(f"{problem}: the dataset changed after the pipeline wrote it; render it again") from e


@contextlib.contextmanager
def reading(data_dir):
    """Shares the dataset folder's lock with other readers for the block, so that a render (pipeline.main) refuses to
    overwrite the shards being read; UserError if a render holds it. Remote folders are not locked."""
    if "://" in data_dir or not os.path.isdir(data_dir):
        yield
        return
    try:
        lock = locks.take(data_dir, locks.DATASET_LOCK, shared=True)
    except locks.Busy as busy:
        raise UserError(f"{data_dir} is being written by a render ({busy.who()} holds {locks.DATASET_LOCK}): wait for "
                        "it to end") from None
    with lock:
        yield
