"""The model registry, the CTC conventions of the installed Keras, and that each model learns."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow.rnn import _do_gru_arguments_support_cudnn
from trainer_fixtures import CHARSET, fixed_dataset  # noqa: F401 (fixture)

from trainer import data, decoding, losses, train
from trainer.errors import UserError
from trainer.models import MODELS, build
from trainer.spec import DatasetSpec

SHAPE = (64, 128, 3)
CTC_MODELS = ("ctc", "ctc_lite", "ctc_fullres", "ctc_small", "ctc_small8", "ctc_stride8", "ctc_wide8")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_builders_return_uncompiled_models_with_float32_probabilities(name):
    model = MODELS[name](SHAPE, len(CHARSET), [4])
    assert not model.compiled
    classes = len(CHARSET) + (name in CTC_MODELS)
    assert model.output_shape[-1] == classes
    assert decoding.is_ctc(classes, CHARSET) == (name in CTC_MODELS)
    probs = model(np.random.default_rng(0).random((2, *SHAPE), np.float32), training=False)
    np.testing.assert_allclose(probs.numpy().sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("policy, compute_dtype", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_mixed_precision_keeps_the_output_float32(name, policy, compute_dtype):
    keras.config.set_dtype_policy(policy)
    try:
        model = MODELS[name](SHAPE, len(CHARSET), [4])
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.layers[1].compute_dtype == compute_dtype
    assert model.output.dtype == "float32"


def test_the_cnn_refuses_variable_length_labels():  # attn_small reads them with an end class (below)
    with pytest.raises(ValueError, match="fixed-length labels"):
        MODELS["cnn"](SHAPE, len(CHARSET), [4, 5, 6])


@pytest.mark.parametrize("name, time_steps", [("ctc", 16), ("ctc_lite", 16), ("ctc_fullres", 32), ("ctc_small", 32),
                                              ("ctc_small8", 16), ("ctc_stride8", 16),
                                              ("ctc_wide8", 16)])
def test_ctc_refuses_labels_longer_than_its_time_steps(name, time_steps):
    longest = time_steps // 2  # a label of n characters needs 2n - 1 steps
    MODELS[name](SHAPE, len(CHARSET), [longest])
    with pytest.raises(ValueError, match=f"gives {time_steps} time steps .* too few for labels of length {longest + 1}"):
        MODELS[name](SHAPE, len(CHARSET), [longest + 1])


@pytest.mark.parametrize("name, layers, units", [("ctc", 2, 128), ("ctc_lite", 1, 64), ("ctc_fullres", 1, 64),
                                               ("ctc_small", 1, 64)])
def test_ctc_grus_are_cudnn_eligible(name, layers, units):
    model = MODELS[name](SHAPE, len(CHARSET), [4, 5, 6])
    grus = [layer for bi in model.layers if isinstance(bi, keras.layers.Bidirectional)
            for layer in (bi.forward_layer, bi.backward_layer)]
    assert len(grus) == 2 * layers
    assert not any(isinstance(layer, keras.layers.Masking) for layer in model.layers)
    for gru in grus:
        assert isinstance(gru, keras.layers.GRU) and gru.units == units and gru.return_sequences
        assert gru.use_cudnn in ("auto", True) and gru.recurrent_dropout == 0
        assert _do_gru_arguments_support_cudnn(gru.cell.activation, gru.cell.recurrent_activation, gru.unroll,
                                               gru.cell.use_bias, gru.cell.reset_after)


def test_ctc_stride8_is_ctc_small8_with_strided_convs_in_place_of_its_first_two_pools():
    small, strided = (MODELS[name](SHAPE, len(CHARSET), [4, 5, 6]) for name in ("ctc_small8", "ctc_stride8"))
    assert strided.count_params() == small.count_params() and strided.output_shape == small.output_shape
    pools = [layer for layer in strided.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    convs = [layer for layer in strided.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [conv.strides for conv in convs] == [(2, 2), (2, 2), (1, 1), (1, 1)]
    assert [pool.pool_size for pool in pools] == [(2, 2), (2, 1)]


def test_ctc_wide8_is_ctc_stride8_one_and_a_half_times_as_wide_without_its_dropout():
    narrow, wide = (MODELS[name](SHAPE, len(CHARSET), [4, 5, 6]) for name in ("ctc_stride8", "ctc_wide8"))
    assert wide.output_shape == narrow.output_shape

    def widths(model):  # the filters of each conv and the units of each Dense but the classifier
        return ([layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
                + [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)][:-1])
    assert [width * 3 // 2 for width in widths(narrow)] == widths(wide) == [48, 96, 144, 192, 192]
    grus = [layer.forward_layer.units for layer in wide.layers if isinstance(layer, keras.layers.Bidirectional)]
    assert grus == [96] and 2 * narrow.count_params() < wide.count_params() < 3 * narrow.count_params()

    def dropouts(model):
        return [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts(narrow) == [0.2] and dropouts(wide) == []


def _one_hot_path(path, classes):
    probs = np.full((len(path), classes), 1e-6, np.float32)
    probs[np.arange(len(path)), path] = 1.0
    return probs / probs.sum(-1, keepdims=True)


def test_ctc_blank_is_last_and_padding_is_ignored():
    blank = len(CHARSET)
    # "0057" needs a blank between the two 0s; repeats without a blank merge.
    probs = np.stack([_one_hot_path([0, blank, 0, 5, 5, blank, 7, blank], blank + 1),
                      _one_hot_path([1, 2, 3, blank, blank, blank, blank, blank], blank + 1)])
    labels = np.array([[0, 0, 5, 7, data.PAD], [1, 2, 3, data.PAD, data.PAD]])
    loss = losses.CTCLoss(blank, reduction=None)
    right = loss(labels, probs).numpy()
    assert (right < 0.01).all()
    np.testing.assert_allclose(loss(labels[:, :4], probs).numpy(), right, rtol=1e-5)  # less padding
    assert (loss(np.array([[0, 5, 7, data.PAD, data.PAD], [3, 2, 1, data.PAD, data.PAD]]), probs).numpy() > 5).all()
    ids, confidence = decoding.decode(probs, CHARSET)
    assert decoding.ids_to_texts(ids, CHARSET) == ["0057", "123"]
    assert ids.shape == (2, 8) and (confidence.numpy() > 0.99).all()
    beam_ids, _ = decoding.decode(probs, CHARSET, "beam_search")
    assert decoding.ids_to_texts(beam_ids, CHARSET) == ["0057", "123"]


def test_per_position_decoding_and_confidence():
    probs = np.array([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]], np.float32)
    ids, confidence = decoding.decode(probs, "abc")
    assert decoding.ids_to_texts(ids, "abc") == ["ac"]
    np.testing.assert_allclose(confidence.numpy(), [0.7 * 0.8], rtol=1e-6)


# One reader per output head in the default suite (cnn: per-position softmax, ctc_lite: CTC); the other CTC readers
# share ctc_lite's loss and decoding and train end to end elsewhere, so their 20-40 s each run under `-m slow`.
LEARNING_CHECKED_BY_DEFAULT = ("cnn", "ctc_lite")


@pytest.mark.parametrize("name", [n if n in LEARNING_CHECKED_BY_DEFAULT else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(MODELS)])
def test_each_model_learns_a_fixed_batch(name, fixed_dataset):
    images, labels = next(iter(data.make_dataset(DatasetSpec.load(fixed_dataset), "train", 8, training=False)))
    keras.utils.set_random_seed(0)
    model = train.compile_model(build(name, SHAPE, len(CHARSET), [4]), CHARSET, 1e-3)  # uint8 in, as trained
    losses_seen = [float(model.train_on_batch(images, labels)) for _ in range(25)]
    assert np.mean(losses_seen[-3:]) < 0.5 * np.mean(losses_seen[:3]), losses_seen


@pytest.mark.parametrize("name", sorted(MODELS))
def test_saved_and_loaded_model_predicts_identically(name, tmp_path):
    model = train.compile_model(MODELS[name](SHAPE, len(CHARSET), [4]), CHARSET, 1e-3)
    images = np.random.default_rng(1).random((3, *SHAPE), np.float32)
    model.optimizer.build(model.trainable_variables)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # compiled: the CTC loss must deserialize too
    assert type(loaded.loss) is type(model.loss)
    np.testing.assert_allclose(loaded.predict_on_batch(images), model.predict_on_batch(images), atol=1e-6)
    assert decoding.predict_text(loaded, tf.constant(images), CHARSET)[0] == \
        decoding.predict_text(model, tf.constant(images), CHARSET)[0]


def test_positions_end_decoding_drops_the_end_class_wherever_it_stands():
    end = len("abc")
    probs = np.eye(end + 1, dtype=np.float32)[[[0, 0, end, end], [2, end, 1, end]]] * 0.9 + 0.025
    ids, confidence = decoding.decode(probs, "abc", kind=decoding.POSITIONS_END)
    assert decoding.ids_to_texts(ids, "abc") == ["aa", "cb"]  # repeats kept (no CTC collapse), END read as padding
    np.testing.assert_allclose(confidence.numpy(), [0.925 ** 4] * 2, rtol=1e-5)
    assert decoding.ids_to_texts(decoding.decode(probs, "abc")[0], "abc") == ["a", "cb"]  # read as CTC: collapsed


def test_end_padded_crossentropy_teaches_the_end_class_past_a_short_label():
    end = len(CHARSET)
    labels = np.array([[3, 3, data.PAD], [1, 2, 4]])
    right = np.eye(end + 1, dtype=np.float32)[[[3, 3, end], [1, 2, 4]]] * 0.98 + 0.02 / (end + 1)
    wrong = np.eye(end + 1, dtype=np.float32)[[[3, 3, 5], [1, 2, 4]]] * 0.98 + 0.02 / (end + 1)
    loss = losses.EndPaddedCrossentropy(end, reduction=None)
    assert (loss(labels, right).numpy() < 0.05).all()
    assert loss(labels, wrong).numpy()[0] > 1 > loss(labels, wrong).numpy()[1]


@pytest.mark.parametrize("name", ["attn_small", "attn_base"])
def test_attention_readers_of_several_lengths_learn_end_and_round_trip(name, tmp_path):
    model = MODELS[name](SHAPE, len(CHARSET), [4, 5, 6])
    assert model.output_shape == (None, 6, len(CHARSET) + 1)
    assert decoding.output_kind(model, CHARSET) == decoding.POSITIONS_END
    assert decoding.output_kind(MODELS[name](SHAPE, len(CHARSET), [4]), CHARSET) == decoding.POSITIONS
    wrapped = build(name, SHAPE, len(CHARSET), [4, 5, 6])  # nested in the uint8 model: still found
    assert decoding.output_kind(wrapped, CHARSET) == decoding.POSITIONS_END
    with pytest.raises(UserError, match="charset mismatch"):
        decoding.output_kind(wrapped, CHARSET[:-1])
    compiled = train.compile_model(wrapped, CHARSET, 1e-3)
    assert isinstance(compiled.loss, losses.EndPaddedCrossentropy)
    path = str(tmp_path / "model.keras")
    compiled.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.loss, losses.EndPaddedCrossentropy)
    assert decoding.output_kind(loaded, CHARSET) == decoding.POSITIONS_END
