"""Exports a trained model as ONNX for the TensorFlow-free reader (captcha_break.reader): model_dir/reader.onnx, uint8
images of the dataset's size in, per-step probabilities out, and model_dir/reader.json beside it with what a reader
needs to preprocess the images and decode the probabilities.

    python -m trainer.export --model_dir=runs/ctc --format=onnx
    wrote runs/ctc/reader.onnx (2.9 MB) and runs/ctc/reader.json: onnxruntime gives the Keras model's probabilities
    within 1.2e-07 on 8 test images

reader.json:

    {"format_version": 1, "onnx": "reader.onnx", "onnx_sha256": "...",
     "input": {"name": "image", "height": 64, "width": 128, "channels": 3, "dtype": "uint8"},
     "output": {"name": "probs", "kind": "ctc" | "positions" | "positions_end"},
     "decoder": "greedy", "charset": "0123...", "label_lengths": [4],
     "preprocessing": {...spec.json's, or null...}, "model": "ctc"}

`output.kind` is trainer.decoding's output kind: the reader decodes each exactly as trainer.decoding does.

The conversion is tf2onnx's (through a tf.function of the Keras model, as keras' own `model.export(format="onnx")`).
tf2onnx cannot convert TensorFlow's antialiased resize (ScaleAndTranslate), which `--input_height` puts in front of
the architecture as a Keras Resizing layer: with a fixed input size every such resize is a linear map, separable by
rows and columns, so it is exported as two matrix products whose matrices are tf.image.resize of identity images
(exact to float32 rounding). A mixed-precision model (--precision=mixed_bfloat16 or mixed_float16) is exported in
float32 (float32_model): its ONNX reader may read an image whose top two classes are within bfloat16's rounding
otherwise than its SavedModel. A layer whose op tf2onnx cannot convert is named in a UserError. Every export is checked
with onnxruntime against the Keras model before anything is written.
"""
import contextlib
import hashlib
import io
import json
import logging
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from trainer import decoding, rundir
from trainer.errors import UserError
from trainer.spec import DatasetSpec

ONNX_FILE = "reader.onnx"
READER_FILE = "reader.json"
FORMAT_VERSION = 1
OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "probs"
CHECK_IMAGES = 8
TOLERANCE = 1e-4  # largest difference of a probability between onnxruntime and Keras (measured: below 1e-6)


def _converter():
    """tf2onnx and onnx, or a UserError saying how to install them."""
    try:
        import onnx
        import tf2onnx
    except ImportError:
        raise UserError("the ONNX export needs tf2onnx, onnx and onnxruntime: pip install -e '.[onnx]'") from None
    with warnings.catch_warnings():  # the patch asks numpy 2 for np.object, which warns
        warnings.simplefilter("ignore", FutureWarning)
        from keras.src.export.onnx import patch_tf2onnx  # what keras' own ONNX export applies: tf2onnx on numpy 2
        patch_tf2onnx()
    tf2onnx.logging.set_level(logging.ERROR)
    return onnx, tf2onnx


def output_kind(model, charset):
    """trainer.decoding's output kind of the model (CTC or per-position; also per-position with an end class where
    trainer.decoding has it)."""
    if hasattr(decoding, "output_kind"):
        return decoding.output_kind(model, charset)
    return "ctc" if decoding.is_ctc(model.output_shape[-1], charset) else "positions"


def resize_matrix(size_in, size_out, method, antialias):
    """[size_out, size_in] float32 numpy: tf.image.resize of one axis as a matrix (every tf.image.resize method is
    linear in the pixels, and separable)."""
    eye = tf.eye(size_in)[:, :, None, None]  # size_in images of size_in x 1, one-hot rows
    out = tf.image.resize(eye, [size_out, 1], method=method, antialias=antialias)
    return tf.transpose(out[:, :, 0, 0]).numpy()  # numpy: a constant of the traced graph, not a captured input


def _resize_as_matmul(layer, height, width):
    """A function doing `layer` (a keras Resizing of [height, width] inputs) as two matrix products, or None if the
    layer crops or pads (not a plain resize)."""
    if getattr(layer, "crop_to_aspect_ratio", False) or getattr(layer, "pad_to_aspect_ratio", False):
        return None
    rows = resize_matrix(height, layer.height, layer.interpolation, layer.antialias)
    columns = resize_matrix(width, layer.width, layer.interpolation, layer.antialias)

    def resize(x):
        x = tf.einsum("ha,bawc->bhwc", tf.constant(rows), tf.cast(x, tf.float32))
        return tf.einsum("wa,bhac->bhwc", tf.constant(columns), x)
    return resize


def _float32_policies(config):
    """A serialized Keras object with every mixed dtype policy (mixed_float16, mixed_bfloat16) made float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and str(config.get("config", {}).get("name", "")).startswith(
                "mixed_"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(value) for value in config]
    return config


def float32_model(model):
    """model itself, or for a mixed-precision model (--precision=mixed_*) a float32 copy with its weights (kept in
    float32 by Keras anyway): tf2onnx types bfloat16 constants as float16, and onnxruntime's CPU kernels take neither
    in convolutions and GRUs."""
    config = keras.saving.serialize_keras_object(model)
    float32 = _float32_policies(config)
    if float32 == config:
        return model
    copy = keras.saving.deserialize_keras_object(float32)
    copy.set_weights(model.get_weights())
    return copy


def forward(model):
    """model's inference as a function of a uint8 batch, with every top-level Resizing layer as matrix products.
    The models trainer.models.build (and uint8_input) make are chains of layers: scale, resize, architecture."""
    top = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not any(isinstance(layer, keras.layers.Resizing) for layer in top):
        return lambda x: model(x, training=False)
    steps, shape = [], model.input_shape[1:3]
    for layer in top:
        step = _resize_as_matmul(layer, *shape) if isinstance(layer, keras.layers.Resizing) else None
        steps.append(step or (lambda x, layer=layer: layer(x, training=False)))
        if isinstance(layer, keras.layers.Resizing):
            shape = (layer.height, layer.width)

    def run(x):
        for step in steps:
            x = step(x)
        return x
    return run


def _layer_names(model, names=None):
    names = set() if names is None else names
    for layer in model.layers:
        names.add(layer.name)
        if hasattr(layer, "layers"):
            _layer_names(layer, names)
    return names


def _layer_of(node_name, names):
    """The deepest Keras layer named in a TensorFlow op's scope (`attn_small_1/resize_1/resize/ScaleAndTranslate`:
    resize), or None."""
    found = None
    for part in node_name.split("/")[:-1]:
        base = part.rsplit("_", 1)[0] if part.rsplit("_", 1)[-1].isdigit() else part
        if part in names or base in names:
            found = part if part in names else base
    return found


def to_onnx(model):
    """The ONNX model (bytes) of a Keras model taking uint8 images; UserError naming the layer whose op tf2onnx
    cannot convert."""
    onnx, tf2onnx = _converter()
    model = float32_model(model)
    signature = (tf.TensorSpec((None, *model.input_shape[1:]), tf.uint8, name=INPUT_NAME),)
    run = forward(model)
    function = tf.function(lambda image: {OUTPUT_NAME: tf.cast(run(image), tf.float32)}, input_signature=signature)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=OPSET)
    except Exception as e:  # tf2onnx raises bare ValueErrors, KeyErrors ... naming the op
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot convert the model to ONNX: tf2onnx failed: {reason}") from None
    unknown = [node for node in proto.graph.node if not onnx.defs.has(node.op_type, node.domain or "")]
    if unknown:
        node = unknown[0]
        layer = _layer_of(node.name, _layer_names(model))
        where = f"layer {layer!r}" if layer else f"the TensorFlow op {node.name!r}"
        raise UserError(f"cannot convert the model to ONNX: {where} uses the TensorFlow op {node.op_type}, which "
                        f"tf2onnx cannot convert (opset {OPSET}); the SavedModel export still serves it")
    return proto.SerializeToString()


def check(model, onnx_bytes, images=None):
    """Largest difference of onnxruntime's probabilities from Keras' on `images` (uint8 [N, H, W, C]; default: a few
    seeded noise images); UserError if over TOLERANCE."""
    import onnxruntime
    if images is None:
        images = np.random.default_rng(0).integers(0, 256, (CHECK_IMAGES, *model.input_shape[1:]), dtype=np.uint8)
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
    expected = keras.ops.convert_to_numpy(keras.ops.cast(float32_model(model)(images, training=False), "float32"))
    difference = float(np.abs(got - expected).max())
    if got.shape != expected.shape or not difference <= TOLERANCE:
        raise UserError(f"the ONNX model disagrees with the Keras model: probabilities differ by up to {difference:.3g}"
                        f" (over {TOLERANCE}) on {len(images)} images; this is a converter bug, report it")
    return difference


def reader_config(model, spec, config, onnx_bytes):
    """reader.json's content (module docstring)."""
    height, width, channels = model.input_shape[1:]
    return {
        "format_version": FORMAT_VERSION,
        "onnx": ONNX_FILE,
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "input": {"name": INPUT_NAME, "height": height, "width": width, "channels": channels, "dtype": "uint8"},
        "output": {"name": OUTPUT_NAME, "kind": output_kind(model, spec.charset)},
        "decoder": config["decoder"],
        "charset": spec.charset,
        "label_lengths": list(spec.label_lengths),
        "preprocessing": None if spec.preprocessing is None else dict(spec.preprocessing),
        "model": config["model"],
    }


def export_onnx_run(model_dir):
    """Writes model_dir/reader.onnx and reader.json from its best.keras, spec.json and config.json, checked with
    onnxruntime first; returns (onnx path, reader.json path, largest probability difference). Needs the TensorFlow
    backend."""
    if keras.backend.backend() != "tensorflow":
        raise UserError(f"the ONNX export needs the tensorflow Keras backend, not {keras.backend.backend()}: run "
                        f"KERAS_BACKEND=tensorflow python -m trainer.export --model_dir={model_dir} --format=onnx")
    _converter()
    model = rundir.load_model(model_dir)
    spec, config = DatasetSpec.load(model_dir), rundir.read_config(model_dir)
    onnx_bytes = to_onnx(model)
    difference = check(model, onnx_bytes)
    onnx_path, json_path = os.path.join(model_dir, ONNX_FILE), os.path.join(model_dir, READER_FILE)
    rundir.write_atomic(onnx_path, onnx_bytes)
    rundir.write_atomic(json_path, json.dumps(reader_config(model, spec, config, onnx_bytes), indent=2) + "\n")
    return onnx_path, json_path, difference


def export_if_available(model_dir):
    """The end-of-training hook: export_onnx_run where tf2onnx and onnxruntime are installed; a model that cannot
    convert is a warning, not a failed run (its SavedModel serves). Returns the ONNX path or None."""
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError:
        return None
    try:
        return export_onnx_run(model_dir)[0]
    except UserError as e:
        logging.getLogger(__name__).warning("no ONNX reader written: %s", e)
        return None
