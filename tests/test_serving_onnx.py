"""ONNX export (trainer.onnx_export) and the TensorFlow-free reader (captcha_break.reader): every registry model
converts, ONNX and the SavedModel read a test split alike, the reader's preprocessing is ingest's to the pixel."""
import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from serving_fixtures import onnx_runs  # noqa: F401 (fixture)
from trainer_fixtures import fixed_dataset, trained, variable_dataset  # noqa: F401 (fixtures)

from captcha_break import decoding as reader_decoding
from captcha_break import preprocess as reader_preprocess
from captcha_break.errors import ImageError, ReaderError
from captcha_break.reader import Reader
from pipeline import ingest
from trainer import decoding, models, onnx_export, rundir, serving, train
from trainer.errors import UserError
from trainer.spec import DatasetSpec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def split_images(data_dir, split="test"):
    """[(encoded PNG bytes, label text)] of a dataset split, in spec order."""
    spec = DatasetSpec.load(data_dir)
    files = [os.path.join(data_dir, shard.file) for shard in spec.shards(split)]
    out = []
    for record in tf.data.TFRecordDataset(files):
        example = tf.train.Example.FromString(record.numpy())
        feature = example.features.feature
        out.append((feature["image"].bytes_list.value[0], feature["text"].bytes_list.value[0].decode()))
    return out


@pytest.fixture(scope="module")
def attn_resized(fixed_dataset, tmp_path_factory):  # noqa: F811
    """attn_small with --input_height=32: its Resizing(antialias=True) layer, which tf2onnx cannot convert as is."""
    model_dir = str(tmp_path_factory.mktemp("attn_resized"))
    train.train_and_evaluate(train.TrainConfig(model="attn_small", data_dir=fixed_dataset, model_dir=model_dir,
                                               batch_size=8, epochs=1, steps_per_epoch=2, seed=0, input_height=32))
    return model_dir, fixed_dataset


@pytest.fixture(scope="module")
def attn_variable(variable_dataset, tmp_path_factory):  # noqa: F811
    """attn_small on labels of 4 to 6 characters: per position with a "no character" class (positions_end)."""
    if not hasattr(decoding, "POSITIONS_END"):
        pytest.skip("trainer.decoding has no positions_end output yet")
    model_dir = str(tmp_path_factory.mktemp("attn_variable"))
    train.train_and_evaluate(train.TrainConfig(model="attn_small", data_dir=variable_dataset, model_dir=model_dir,
                                               batch_size=8, epochs=1, steps_per_epoch=2, seed=0))
    return model_dir, variable_dataset


# Registry entries that are another entry's builder with other widths or pools: the same layers convert, so they
# convert under -m slow only (3-8 s each on 2 cores).
SAME_LAYERS_AS = {"attn_base": "attn_small", "ctc_small8": "ctc_stride8", "ctc_wide8": "ctc_stride8"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in SAME_LAYERS_AS else name
                                  for name in sorted(models.MODELS)])
def test_every_registry_model_converts(name):
    """With --input_height, so with the Resizing layer; the trained runs below convert at their own size."""
    label_lengths = [4] if name in ("cnn",) or name.startswith("attn") else [4, 5]
    model = models.build(name, (40, 120, 3), len(CHARSET), label_lengths, input_height=32)
    onnx_bytes = onnx_export.to_onnx(model)
    images = np.random.default_rng(1).integers(0, 256, (4, 40, 120, 3), dtype=np.uint8)
    assert onnx_export.check(model, onnx_bytes, images) < 1e-5


def test_a_mixed_precision_model_converts_in_float32():
    """--precision=mixed_bfloat16 (the CPU recipe's): tf2onnx would type its constants float16, onnxruntime refuses."""
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = models.build("ctc_lite", (40, 120, 3), len(CHARSET), [4, 5], input_height=32)
    finally:
        keras.config.set_dtype_policy("float32")
    assert any(layer.dtype_policy.name == "mixed_bfloat16" for layer in model.layers[-1].layers)
    onnx_bytes = onnx_export.to_onnx(model)
    images = np.random.default_rng(1).integers(0, 256, (4, 40, 120, 3), dtype=np.uint8)
    assert onnx_export.check(model, onnx_bytes, images) < 1e-5


def test_a_layer_that_cannot_convert_is_named():
    class Odd(keras.layers.Layer):  # TensorFlow's antialiased resize called directly: ScaleAndTranslate
        def call(self, x):
            return tf.image.resize(x, (20, 60), antialias=True)

    inputs = keras.Input((40, 120, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = Odd(name="odd_resize")(x)
    outputs = keras.layers.Softmax()(keras.layers.Reshape((4, -1))(keras.layers.Dense(4)(x))[..., :36])
    model = keras.Model(inputs, outputs)
    with pytest.raises(UserError, match=r"layer 'odd_resize' uses the TensorFlow op ScaleAndTranslate"):
        onnx_export.to_onnx(model)


def _export(model_dir):
    done = subprocess.run([sys.executable, "-m", "trainer.export", f"--model_dir={model_dir}", "--format=onnx"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {model_dir}/reader.onnx and {model_dir}/reader.json")
    return json.loads(open(os.path.join(model_dir, "reader.json")).read())


@pytest.mark.parametrize("which", ["cnn", "ctc", "attn_resized", "attn_variable"])
def test_onnx_reader_equals_the_saved_model_on_the_test_split(request, which):
    if which.startswith("attn"):  # exported by the command
        model_dir, data_dir = request.getfixturevalue(which)
        config = _export(model_dir)
    else:
        model_dir, data_dir = request.getfixturevalue("onnx_runs")[which]
        config = json.loads(open(os.path.join(model_dir, "reader.json")).read())
    spec = DatasetSpec.load(data_dir)
    assert config["charset"] == spec.charset and config["preprocessing"] == spec.preprocessing
    assert config["output"]["kind"] == {"cnn": "positions", "ctc": "ctc", "attn_resized": "positions",
                                        "attn_variable": "positions_end"}[which]
    assert [config["input"][k] for k in ("height", "width", "channels")] == list(spec.image_shape)
    images = [encoded for encoded, _ in split_images(data_dir)] + [encoded for encoded, _ in split_images(data_dir,
                                                                                                          "val")]
    signature = serving.load_signature(model_dir)
    out = signature(images=tf.constant(images))
    saved = [(t.decode(), float(c)) for t, c in zip(out["text"].numpy(), out["confidence"].numpy())]
    reader = Reader(model_dir)
    batch = reader.read_batch(images)
    assert [t for t, _ in batch] == [t for t, _ in saved]  # 100% of the test and val splits
    np.testing.assert_allclose([c for _, c in batch], [c for _, c in saved], rtol=1e-4, atol=1e-6)
    one_by_one = [reader.read(image) for image in images[:4]]
    assert [t for t, _ in one_by_one] == [t for t, _ in batch[:4]]
    np.testing.assert_allclose([c for _, c in one_by_one], [c for _, c in batch[:4]], rtol=1e-5)


def test_decoding_mirrors_trainer_decoding():
    """Every output kind trainer.decoding knows, on random probabilities with repeats and blanks."""
    rng = np.random.default_rng(0)
    charset = "abc"
    logits = rng.normal(0, 3, (64, 9, 4)).astype(np.float32)
    logits[:, 3] = logits[:, 2]  # repeated steps, for CTC's merge
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    kinds = [("ctc", probs), ("positions", probs[..., :3] / probs[..., :3].sum(-1, keepdims=True))]
    if hasattr(decoding, "POSITIONS_END"):
        kinds.append((decoding.POSITIONS_END, probs))
    for kind, p in kinds:
        arguments = {"kind": kind} if hasattr(decoding, "POSITIONS_END") else {}
        ids, confidence = decoding.decode(p, charset, "greedy", **arguments)
        texts, got = reader_decoding.decode(p, charset, kind)
        assert texts == decoding.ids_to_texts(ids, charset), kind
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(confidence), rtol=1e-6)


def _image(mode, size, seed, fmt):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    pixels[:, : size[0] // 3, 3] = 0  # a transparent third
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("resize", ["pad", "stretch"])
@pytest.mark.parametrize("encoded", [_image("RGBA", (300, 47), 0, "PNG"), _image("RGB", (60, 90), 1, "JPEG"),
                                     _image("P", (128, 64), 2, "GIF"), _image("LA", (90, 20), 3, "PNG"),
                                     _image("L", (50, 50), 4, "BMP")], ids=["rgba", "jpeg", "gif", "la", "bmp"])
def test_reader_preprocessing_is_ingests(encoded, resize):
    preprocessing = ingest.preprocessing(resize)
    expected = np.asarray(Image.open(io.BytesIO(ingest.to_png(encoded, 128, 64, resize))))
    got = reader_preprocess.decode(encoded, 64, 128, 3, preprocessing)
    np.testing.assert_array_equal(got, expected)


def test_reader_preprocessing_before_preprocessing_is_the_saved_models_old_resize():
    from trainer import preprocess
    encoded = _image("RGB", (300, 47), 5, "PNG")
    expected = preprocess.decode_image(encoded, (64, 128, 3), None).numpy().astype(int)
    got = reader_preprocess.decode(encoded, 64, 128, 3, None).astype(int)
    assert np.abs(got - expected).max() <= 1


def test_reader_bad_input(onnx_runs, tmp_path):  # noqa: F811
    model_dir, _ = onnx_runs["cnn"]
    reader = Reader(model_dir)
    with pytest.raises(ImageError, match="^not an image Pillow can read$"):
        reader.read(b"hello")
    with pytest.raises(ImageError, match="^empty image"):
        reader.read(b"")
    with pytest.raises(ImageError, match=r"^cannot read .*missing.png: No such file or directory$"):
        reader.read(str(tmp_path / "missing.png"))
    with pytest.raises(ImageError, match=r"^cannot read .*: not a regular file$"):
        reader.read(str(tmp_path))
    with pytest.raises(ImageError, match=r"^image 1: not an image"):
        reader.read_batch([_image("RGB", (128, 64), 0, "PNG"), b"nope"])
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, format="PNG")
    with pytest.raises(ImageError, match="^the image has 400000000 pixels, over the limit"):
        reader.read(bomb.getvalue())
    assert Reader(model_dir, max_pixels=1000).read_batch([]) == []
    with pytest.raises(ImageError, match="^the image is 128x64: 8192 pixels, over the limit of 1000$"):
        Reader(model_dir, max_pixels=1000).read(_image("RGB", (128, 64), 0, "PNG"))
    with pytest.raises(ReaderError, match="does not exist"):
        Reader(str(tmp_path / "none"))
    with pytest.raises(ReaderError, match="reader.json not found: export the ONNX reader first"):
        Reader(str(tmp_path))


def test_end_of_training_hook(onnx_runs, fixed_dataset, tmp_path, caplog, onnx_after_training):  # noqa: F811
    """export_if_available: the ONNX reader where the converter is installed, a warning where the model cannot
    convert; trainer.main's training calls it after the SavedModel."""
    model_dir, _ = onnx_runs["ctc"]
    assert onnx_export.export_if_available(model_dir) == os.path.join(model_dir, "reader.onnx")
    assert onnx_export.export_if_available(str(tmp_path)) is None
    assert "no ONNX reader written" in caplog.text
    trained_dir = str(tmp_path / "trained")
    train.train_and_evaluate(train.TrainConfig(model="attn_small", data_dir=fixed_dataset, model_dir=trained_dir,
                                               input_height=32, batch_size=8, epochs=1, steps_per_epoch=1, seed=0))
    assert rundir.is_finished(trained_dir)
    with open(os.path.join(trained_dir, "reader.json")) as f:
        assert json.load(f)["model"] == "attn_small"


def test_export_bad_input_is_one_error_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "trainer.export", f"--model_dir={tmp_path / 'missing'}",
                           "--format=onnx"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: --model_dir {tmp_path / 'missing'} does not exist"


def test_reader_imports_neither_tensorflow_keras_nor_beam(onnx_runs):  # noqa: F811
    model_dir, data_dir = onnx_runs["ctc"]
    image_path = os.path.join(str(os.path.dirname(model_dir)), "one.png")
    with open(image_path, "wb") as f:
        f.write(split_images(data_dir)[0][0])
    code = ("import sys; from captcha_break.reader import Reader; import captcha_break.serve, captcha_break.label; "
            f"print(Reader({model_dir!r}).read({image_path!r})[0]); "
            "print(sorted({m.split('.')[0] for m in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[1].replace("'", '"')))
    assert not loaded & {"tensorflow", "keras", "apache_beam", "trainer", "pipeline", "jax", "torch"}
