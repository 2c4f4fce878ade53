"""Exports a trained model as a self-contained SavedModel: encoded image bytes in, text and confidence out.

    sig = tf.saved_model.load("runs/ctc/saved_model").signatures["serving_default"]
    out = sig(images=tf.constant([open("a.png", "rb").read()]))  # {"text": [b"7K2Q"], "confidence": [0.93]}

Images may be PNG, JPEG, GIF or BMP of any size and channel count: they are brought to the model's input size the
way the dataset's images were (its spec.json's `preprocessing`, see trainer.preprocess), then decoded exactly as in
trainer.decoding. An empty batch gives empty results. One image that does not decode fails its whole batch
(InvalidArgumentError); trainer.predict sends files one by one, so it reports just that file.
"""
import keras
import tensorflow as tf

from trainer import data, decoding, preprocess


def export_saved_model(model, charset, path, decoder="greedy", preprocessing=None):
    """Writes `model` plus preprocessing (a spec's `preprocessing`, None for specs without one) and decoding to
    `path` with signature `serving_default`."""
    image_shape = tuple(model.input_shape[1:])

    def read(images):
        pixels = tf.map_fn(lambda b: preprocess.decode_image(b, image_shape, preprocessing), images,
                           fn_output_signature=tf.TensorSpec(image_shape, tf.uint8))
        ids, confidence = decoding.decode(model(data.to_float(pixels), training=False), charset, decoder)
        return decoding.ids_to_text(ids, charset), confidence

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(images):
        text, confidence = tf.cond(tf.size(images) > 0, lambda: read(images),  # CTC decoders refuse empty batches
                                   lambda: (tf.zeros([0], tf.string), tf.zeros([0], tf.float32)))
        return {"text": text, "confidence": confidence}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve)
    archive.write_out(path, verbose=False)
