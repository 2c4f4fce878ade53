"""trainer.data: parsing by the spec's schema, finding bad shards, and the tf.data pipeline."""
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from trainer_fixtures import CHARSET, copy_dataset, fixed_dataset, variable_dataset  # noqa: F401 (fixtures)

from trainer import augment, data, decoding
from trainer.errors import UserError
from trainer.spec import DatasetSpec


def _serialized(data_dir, split):
    return [r.numpy() for r in tf.data.TFRecordDataset(DatasetSpec.load(data_dir).shard_paths(split))]


def _flip_bytes(path, offset=200):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_corrupt_record_is_found_by_reading(fixed_dataset, tmp_path):
    copy = copy_dataset(fixed_dataset, tmp_path / "data")
    spec = DatasetSpec.load(copy)
    assert data.find_bad_shard(spec, ["train"]) is None
    _flip_bytes(os.path.join(copy, "train.tfrecord-00001-of-00002"))
    with pytest.raises(UserError, match="^cannot read shard train.tfrecord-00001-of-00002 of .* after record ") as e:
        with data.naming_bad_shards(spec, ["val", "train"]):
            for _ in data.make_dataset(spec, "train", 8, training=False):
                pass
    assert "\n" not in str(e.value)


def test_undecodable_record_is_named_in_one_line(fixed_dataset, tmp_path):
    copy = copy_dataset(fixed_dataset, tmp_path / "data")
    path = os.path.join(copy, "test.tfrecord-00000-of-00002")
    records = [tf.train.Example.FromString(r) for r in _serialized_file(path)]
    records[2].features.feature["image"].bytes_list.value[0] = b"not an image"
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    spec = DatasetSpec.load(copy)
    with pytest.raises(UserError, match="^record 2 of shard test.tfrecord-00000-of-00002 of .* does not decode: ") as e:
        with data.naming_bad_shards(spec, ["test"]):
            for _ in data.make_dataset(spec, "test", 4, training=False):
                pass
    assert "\n" not in str(e.value) and "Detected at node" not in str(e.value)


def test_one_pass_over_a_split_that_lost_records_names_the_shard(fixed_dataset, tmp_path):
    copy = copy_dataset(fixed_dataset, tmp_path / "data")
    open(os.path.join(copy, "val.tfrecord-00001-of-00002"), "w").close()
    spec = DatasetSpec.load(copy)
    with pytest.raises(UserError, match="^shard val.tfrecord-00001-of-00002 of .* holds 0 records, spec.json lists 8"):
        with data.naming_bad_shards(spec, ["train", "val"]):
            for _ in data.make_dataset(spec, "val", 4, training=False):
                pass


def _serialized_file(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(path)]


def test_parse_eagerly_equals_parse_in_tf_data(fixed_dataset):
    """big_vision habit: the same op eagerly and inside tf.data."""
    spec = DatasetSpec.load(fixed_dataset)
    serialized = _serialized(fixed_dataset, "val")[:8]
    eager_images, eager_labels = data.parse_batch(tf.constant(serialized), spec)
    graph_images, graph_labels = next(iter(
        tf.data.Dataset.from_tensor_slices(serialized).batch(8).map(lambda s: data.parse_batch(s, spec))))
    np.testing.assert_array_equal(eager_images.numpy(), graph_images.numpy())
    np.testing.assert_array_equal(eager_labels.numpy(), graph_labels.numpy())
    # Labels agree with the records' own text; images with an independent PNG decode.
    example = tf.train.Example.FromString(serialized[0])
    text = example.features.feature["text"].bytes_list.value[0].decode()
    assert decoding.ids_to_texts(eager_labels[:1], CHARSET) == [text]
    png = example.features.feature["image"].bytes_list.value[0]
    np.testing.assert_array_equal(eager_images[0].numpy(), tf.io.decode_png(png, channels=3).numpy())


@pytest.mark.parametrize("features", [{"image": {"dtype": "string", "shape": []},
                                       "label": {"dtype": "int64", "shape": [None]}}, None])
def test_parsing_follows_the_schema_of_spec_json(fixed_dataset, tmp_path, features):
    """The records parse by spec.json's features, whether they list just what the trainer reads or are absent (a
    spec written without them), as by the pipeline's full schema."""
    copy = copy_dataset(fixed_dataset, tmp_path / "data")
    with open(os.path.join(copy, "spec.json")) as f:
        raw = json.load(f)
    assert set(raw["features"]) == {"image", "text", "label", "length", "index"}  # the pipeline's schema
    if features is None:
        del raw["features"]
    else:
        raw["features"] = features
    with open(os.path.join(copy, "spec.json"), "w") as f:
        json.dump(raw, f)
    spec, full = DatasetSpec.load(copy), DatasetSpec.load(fixed_dataset)
    assert spec.parse_spec() == full.parse_spec() == {"image": tf.io.FixedLenFeature([], tf.string),
                                                      "label": tf.io.VarLenFeature(tf.int64)}
    serialized = tf.constant(_serialized(fixed_dataset, "test"))
    for got, expected in zip(data.parse_batch(serialized, spec), data.parse_batch(serialized, full)):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    labels = next(iter(data.make_dataset(spec, "test", 16, training=False)))[1].numpy()
    texts = [tf.train.Example.FromString(r).features.feature["text"].bytes_list.value[0].decode()
             for r in serialized.numpy()]
    assert sorted(decoding.ids_to_texts(labels, CHARSET)) == sorted(texts)


def test_eval_dataset_is_one_ordered_pass_in_uint8(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    batches = list(data.make_dataset(spec, "test", 6, training=False))
    assert [len(labels) for _, labels in batches] == [6, 6, 4]
    images, labels = batches[0]
    assert images.dtype == tf.uint8 and images.shape[1:] == (64, 128, 3)  # the model scales them (models.build)
    assert int(tf.reduce_max(images)) > 1  # levels 0-255, not [0, 1]
    again = list(data.make_dataset(spec, "test", 6, training=False, cache=True))
    for (x1, y1), (x2, y2) in zip(batches, again):
        np.testing.assert_array_equal(x1.numpy(), x2.numpy())
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())


def test_train_dataset_repeats_with_full_batches(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    batches = list(data.make_dataset(spec, "train", 20, training=True, cache=True).take(5))
    assert all(labels.shape == (20, 4) for _, labels in batches)  # 100 records from a 48-record split


def test_variable_length_labels_are_padded(variable_dataset):
    spec = DatasetSpec.load(variable_dataset)
    assert spec.label_lengths == (4, 5, 6) and spec.max_label_length == 6
    labels = np.concatenate([y.numpy() for _, y in data.make_dataset(spec, "val", 8, training=False)])
    assert labels.shape == (8, 6)
    lengths = (labels != data.PAD).sum(axis=1)
    assert set(lengths) <= {4, 5, 6}
    for row, length in zip(labels, lengths):  # padding only at the end
        assert (row[:length] >= 0).all() and (row[length:] == data.PAD).all()


def test_empty_split_is_a_clear_error(fixed_dataset, tmp_path):
    copy = copy_dataset(fixed_dataset, tmp_path / "data")
    with open(os.path.join(copy, "spec.json")) as f:
        spec = json.load(f)
    spec["splits"]["test"] = {"num_records": 0, "num_bytes": 0, "shards": []}
    with open(os.path.join(copy, "spec.json"), "w") as f:
        json.dump(spec, f)
    with pytest.raises(UserError, match="split 'test' .* has no records"):
        data.make_dataset(DatasetSpec.load(copy), "test", 8, training=False)


def test_decode_image_converts_channels_and_refuses_other_sizes():
    gray = tf.io.encode_png(tf.fill([64, 128, 1], tf.constant(128, tf.uint8)))
    image = data.decode_image(gray, (64, 128, 3))
    assert image.shape == (64, 128, 3) and image.dtype == tf.uint8 and int(tf.reduce_min(image)) == 128
    with pytest.raises(tf.errors.InvalidArgumentError):
        data.decode_image(gray, (32, 128, 3))


def test_augment_changes_images_but_not_shapes_range_or_labels(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    plain = list(data.make_dataset(spec, "test", 8, training=False))
    augmented = list(data.make_dataset(spec, "test", 8, training=False, augment=True))
    assert len(augmented) == len(plain) == 2
    for (images, labels), (new_images, new_labels) in zip(plain, augmented):
        assert new_images.shape == images.shape and new_images.dtype == tf.uint8
        difference = np.abs(new_images.numpy().astype(float) - images.numpy())
        assert (difference.mean(axis=(1, 2, 3)) > 0.01 * 255).all()
        np.testing.assert_array_equal(new_labels.numpy(), labels.numpy())
    two_passes = [images.numpy().astype(float) for images, _ in
                  data.make_dataset(spec, "test", 8, training=False, augment=True).repeat(2)]
    assert np.abs(two_passes[2] - two_passes[0]).mean() > 0.01 * 255  # the same records get new jitter each pass
    eager = augment.augment(tf.cast(plain[0][0], tf.float32) / 255)  # eagerly as in tf.data
    assert eager.shape == plain[0][0].shape and 0.0 <= float(tf.reduce_min(eager)) <= float(tf.reduce_max(eager)) <= 1


def test_training_batches_are_augmented_only_when_asked(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    images, labels = data.parse_batch(tf.constant(_serialized(fixed_dataset, "train")), spec)
    by_label = {tuple(label): image for label, image in zip(labels.numpy(), images.numpy())}
    for augmented in (False, True):
        images, labels = next(iter(data.make_dataset(spec, "train", 8, training=True, augment=augmented)))
        assert images.shape == (8, 64, 128, 3) and images.dtype == tf.uint8 and labels.shape == (8, 4)
        same = [np.array_equal(image, by_label[tuple(label)]) for image, label in zip(images.numpy(), labels.numpy())]
        assert same == [not augmented] * 8  # shuffled records: matched by label


def test_without_augment_batches_are_the_decoded_records(fixed_dataset):
    spec = DatasetSpec.load(fixed_dataset)
    images, labels = data.parse_batch(tf.constant(_serialized(fixed_dataset, "test")), spec)
    by_label = {tuple(label): image for label, image in zip(labels.numpy(), images.numpy())}
    got_images, got_labels = next(iter(data.make_dataset(spec, "test", 16, training=False)))
    assert len(by_label) == len(got_labels) == 16  # the shards are interleaved: match records by label
    for image, label in zip(got_images.numpy(), got_labels.numpy()):
        np.testing.assert_array_equal(image, by_label[tuple(label)])


def test_affine_transforms_keep_the_centre_and_shift_by_whole_pixels():
    one = tf.constant([1.0])
    rotated = augment.affine_transforms(0.3 * one, 0.2 * one, 1.1 * one, 0 * one, 0 * one, 64, 128).numpy()[0]
    cx, cy = 63.5, 31.5
    assert rotated[0] * cx + rotated[1] * cy + rotated[2] == pytest.approx(cx)
    assert rotated[3] * cx + rotated[4] * cy + rotated[5] == pytest.approx(cy)
    shifted = augment.affine_transforms(0 * one, 0 * one, one, 3 * one, -2 * one, 64, 128)
    np.testing.assert_allclose(shifted.numpy(), [[1, 0, -3, 0, 1, 2, 0, 0]], atol=1e-6)
    image = tf.random.uniform([1, 64, 128, 3])
    moved = keras.ops.image.affine_transform(image, shifted).numpy()
    np.testing.assert_allclose(moved[0, :62, 3:], image.numpy()[0, 2:, :-3], atol=1e-6)  # 3 right, 2 up


def test_colour_augment_keeps_white_white_and_geometry_in_place(fixed_dataset):
    """colour() changes ink colours only: a white pixel stays white and a pixel with no ink nowhere gets ink; a
    channel permutation shows as a new hue. On a grey dataset it is refused naming the channels."""
    spec = DatasetSpec.load(fixed_dataset)
    images = np.zeros((64, 8, 8, 3), np.float32) + 1.0  # white...
    images[:, 2:6, 2:6] = [0.9, 0.2, 0.4]  # ...with a pink square
    recoloured = augment.colour(tf.constant(images)).numpy()
    np.testing.assert_allclose(recoloured[:, 0, 0], 1.0, atol=1e-3)  # the background
    square = recoloured[:, 3, 3]
    assert (square.max(axis=1) < 0.999).all() and len({tuple(np.argsort(p)) for p in square}) > 1
    plain, _ = next(iter(data.make_dataset(spec, "test", 8, training=False)))
    coloured, _ = next(iter(data.make_dataset(spec, "test", 8, training=False, colour_augment=True)))
    assert coloured.dtype == tf.uint8 and coloured.shape == plain.shape
    assert not np.array_equal(coloured.numpy(), plain.numpy())
    grey = dataclasses.replace(spec, image_shape=(64, 128, 1))
    with pytest.raises(UserError, match=r"--colour_augment needs RGB images; .* has 1 channel"):
        data.make_dataset(grey, "test", 8, training=True, colour_augment=True)
