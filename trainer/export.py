"""Exports a trained model as a self-contained SavedModel: encoded image bytes in, text and confidence out.

    python -m trainer.export --model_dir=runs/ctc     # writes runs/ctc/saved_model from runs/ctc/best.keras
    python -m trainer.export --model_dir=runs/ctc --format=onnx  # runs/ctc/reader.onnx + reader.json instead

    sig = tf.saved_model.load("runs/ctc/saved_model").signatures["serving_default"]
    out = sig(images=tf.constant([open("a.png", "rb").read()]))  # {"text": [b"7K2Q"], "confidence": [0.93]}

trainer.main runs this at the end of training: in its own process under the TensorFlow backend, or, when another
Keras backend trained the model, as the command above with KERAS_BACKEND=tensorflow (best.keras does not depend on
the backend that wrote it). Run it by hand to export again, e.g. a run trained before its SavedModel served empty
batches.

Images may be PNG, JPEG, GIF or BMP of any size and channel count: they are brought to the model's input size the
way the dataset's images were (its spec.json's `preprocessing`, see trainer.preprocess), then decoded exactly as in
trainer.decoding. An empty batch gives empty results. One image that does not decode fails its whole batch
(InvalidArgumentError); trainer.predict sends files one by one, so it reports just that file.

`--format=onnx` writes the ONNX reader that captcha_break.reader serves without TensorFlow (trainer.onnx_export).
"""
import contextlib
import os
import subprocess
import sys

import keras
import tensorflow as tf
from absl import app, flags, logging

from trainer import command, decoding, preprocess, rundir
from trainer.errors import UserError, exit_on_user_error
from trainer.spec import DatasetSpec


def export_saved_model(model, charset, path, decoder="greedy", preprocessing=None):
    """Writes `model` (taking uint8 images) plus preprocessing (a spec's `preprocessing`, None for specs without one)
    and decoding to `path` with signature `serving_default`. Needs the TensorFlow backend."""
    image_shape = tuple(model.input_shape[1:])
    chars = tf.constant(list(charset))

    def read(images):
        pixels = tf.map_fn(lambda b: preprocess.decode_image(b, image_shape, preprocessing), images,
                           fn_output_signature=tf.TensorSpec(image_shape, tf.uint8))
        ids, confidence = decoding.decode(model(pixels, training=False), charset, decoder,
                                          kind=decoding.output_kind(model, charset))
        valid = ids >= 0
        text = tf.strings.reduce_join(tf.where(valid, tf.gather(chars, tf.where(valid, ids, 0)), ""), axis=-1)
        return text, confidence

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(images):
        text, confidence = tf.cond(tf.size(images) > 0, lambda: read(images),  # CTC decoders refuse empty batches
                                   lambda: (tf.zeros([0], tf.string), tf.zeros([0], tf.float32)))
        return {"text": text, "confidence": confidence}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve)
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING)  # TensorFlow's saver logs its steps to absl at INFO
    try:
        archive.write_out(path, verbose=False)
    finally:
        logging.set_verbosity(verbosity)


def export_run(model_dir):
    """Writes model_dir/saved_model from its best.keras, spec.json and config.json (its decoder), in this process;
    needs the TensorFlow backend (UserError otherwise)."""
    if keras.backend.backend() != "tensorflow":
        raise UserError(f"the SavedModel export needs the tensorflow Keras backend, not {keras.backend.backend()}: "
                        f"run KERAS_BACKEND=tensorflow python -m trainer.export --model_dir={model_dir}")
    model = rundir.load_model(model_dir)
    spec = DatasetSpec.load(model_dir)
    path = os.path.join(model_dir, rundir.SAVED_MODEL)
    # Locally whole or not there; object stores cannot rename a folder, and there the run stays unfinished (its
    # backup/ kept) until the export has ended.
    with rundir.atomic_path(path) if "://" not in path else contextlib.nullcontext(path) as target:
        export_saved_model(model, spec.charset, target, rundir.read_config(model_dir)["decoder"], spec.preprocessing)


def export_under_tensorflow(model_dir):
    """export_run(model_dir) here under the TensorFlow backend, else in a `python -m trainer.export` process under
    it; UserError naming the command to run again if that fails."""
    if keras.backend.backend() == "tensorflow":
        export_run(model_dir)
        return
    command = [sys.executable, "-m", "trainer.export", f"--model_dir={model_dir}"]
    if subprocess.run(command, env={**os.environ, "KERAS_BACKEND": "tensorflow"}).returncode:
        raise UserError("the SavedModel export failed (above); once fixed, run KERAS_BACKEND=tensorflow python -m "
                        f"trainer.export --model_dir={model_dir}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    with exit_on_user_error():
        if flags.FLAGS.format == "onnx":
            from trainer import onnx_export
            onnx_path, json_path, difference = onnx_export.export_onnx_run(flags.FLAGS.model_dir)
            print(f"wrote {onnx_path} and {json_path}: onnxruntime gives the Keras model's probabilities within "
                  f"{difference:.2g} on {onnx_export.CHECK_IMAGES} test images")
        else:
            export_run(flags.FLAGS.model_dir)


def define_flags():
    """Defines --model_dir: at `python -m trainer.export` only, not at import, as trainer.main, which imports this
    module, has its own."""
    flags.DEFINE_string("model_dir", None, "Folder written by trainer.main: exports its best.keras.")
    flags.mark_flag_as_required("model_dir")
    flags.DEFINE_enum("format", "saved_model", ["saved_model", "onnx"],
                      "saved_model: M/saved_model (TensorFlow); onnx: M/reader.onnx and M/reader.json for "
                      "captcha_break.reader (needs tf2onnx, onnx and onnxruntime).")


run = command.console_script(main, define_flags)  # the `captcha-export` console script


if __name__ == "__main__":
    run()
