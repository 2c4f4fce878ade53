"""Exports a trained model as a self-contained SavedModel: encoded image bytes in, text and confidence out.

    sig = tf.saved_model.load("runs/ctc/saved_model").signatures["serving_default"]
    out = sig(images=tf.constant([open("a.png", "rb").read()]))  # {"text": [b"7K2Q"], "confidence": [0.93]}

Images may be PNG, JPEG, GIF or BMP of any size and channel count: they are converted to the model's channels
and resized (bilinear) to its input size, then decoded exactly as in trainer.decoding.
"""
import keras
import tensorflow as tf

from trainer import data, decoding


def export_saved_model(model, charset, path, decoder="greedy"):
    """Writes `model` plus preprocessing and decoding to `path` with signature `serving_default`."""
    image_shape = tuple(model.input_shape[1:])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(images):
        pixels = tf.map_fn(lambda b: data.decode_image(b, image_shape, resize=True), images,
                           fn_output_signature=tf.TensorSpec(image_shape, tf.uint8))
        ids, confidence = decoding.decode(model(data.to_float(pixels), training=False), charset, decoder)
        return {"text": decoding.ids_to_text(ids, charset), "confidence": confidence}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve)
    archive.write_out(path, verbose=False)
