"""The model registry, the CTC conventions of the installed Keras, and that each model learns."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow.rnn import _do_gru_arguments_support_cudnn
from trainer_fixtures import CHARSET, fixed_dataset  # noqa: F401 (fixture)

from trainer import data, decoding, losses, train
from trainer.models import MODELS, build
from trainer.spec import DatasetSpec

SHAPE = (64, 128, 3)
CTC_MODELS = ("ctc", "ctc_lite", "ctc_fullres", "ctc_small")


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


@pytest.mark.parametrize("name", ["cnn", "attn_small"])
def test_per_position_models_refuse_variable_length_labels(name):
    with pytest.raises(ValueError, match="fixed-length labels"):
        MODELS[name](SHAPE, len(CHARSET), [4, 5, 6])


@pytest.mark.parametrize("name, time_steps", [("ctc", 16), ("ctc_lite", 16), ("ctc_fullres", 32), ("ctc_small", 32)])
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
