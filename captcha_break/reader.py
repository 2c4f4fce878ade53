"""A trained reader without TensorFlow: model_dir/reader.onnx and reader.json (written by
`python -m trainer.export --model_dir=M --format=onnx`) read with onnxruntime, numpy and Pillow.

    from captcha_break.reader import Reader
    reader = Reader("runs/ctc")
    reader.read("captcha.png")                        # ('7K2Q', 0.9312...)
    reader.read(open("captcha.png", "rb").read())     # the same from bytes
    reader.read_batch(["a.png", "b.jpg"])             # [('7K2Q', 0.93...), ('X0O4', 0.44...)], one model call

Images are preprocessed as the pipeline made the training images (captcha_break.preprocess) and decoded as
trainer.decoding does (captcha_break.decoding), so the answer is the SavedModel's. A folder holding only reader.onnx
and reader.json is enough. Bad input raises ImageError (one image) or ReaderError (the model folder), each with a
one-line message.
"""
import hashlib
import os

import numpy as np
import onnxruntime

from captcha_break import decoding, preprocess
from captcha_break.errors import ImageError, ReaderError, json_object

READER_FILE = "reader.json"
FORMAT_VERSION = 1
MAX_BATCH = 64  # images per onnxruntime call in read_batch: bounds the memory of a large batch


def load_config(model_dir):
    """model_dir/reader.json, checked; ReaderError naming the file and the field."""
    if not os.path.isdir(model_dir):
        raise ReaderError(f"--model_dir {model_dir} does not exist" if not os.path.exists(model_dir)
                          else f"--model_dir {model_dir} is not a folder")
    path = os.path.join(model_dir, READER_FILE)
    if not os.path.exists(path):
        raise ReaderError(f"{path} not found: export the ONNX reader first with python -m trainer.export "
                          f"--model_dir={model_dir} --format=onnx")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ReaderError(f"cannot read {path}: {e}; export it again (trainer.export --format=onnx)") from None
    config = json_object(data, path, FORMAT_VERSION, ReaderError,
                         hint="; export it again (trainer.export --format=onnx)")
    try:
        shape = config["input"]["height"], config["input"]["width"], config["input"]["channels"]
        kind, charset, decoder = config["output"]["kind"], config["charset"], config["decoder"]
        config["onnx"], config["input"]["name"], config["output"]["name"], config["preprocessing"]
    except (KeyError, TypeError) as e:
        raise ReaderError(f"{path}: missing field {e}; export it again (trainer.export --format=onnx)") from None
    if not all(isinstance(v, int) and v > 0 for v in shape) or shape[2] not in (1, 3):
        raise ReaderError(f"{path}: input size {shape} is not a height, a width and 1 or 3 channels")
    if kind not in decoding.KINDS:
        raise ReaderError(f"{path}: output kind {kind!r} is not one this reader decodes ({', '.join(decoding.KINDS)})")
    if decoder not in decoding.DECODERS:
        raise ReaderError(f"{path}: decoder {decoder!r}: this reader decodes greedily only; serve the SavedModel, or "
                          "train with --decoder=greedy")
    if not isinstance(charset, str) or not charset:
        raise ReaderError(f"{path}: charset must be a non-empty string")
    return config


class Reader:
    """Reads captchas with model_dir's ONNX reader. `threads`: onnxruntime's intra-op threads (None: every core);
    `max_pixels`: the largest image accepted (None: Pillow's limit, as ingest), checked before decoding."""

    def __init__(self, model_dir, threads=None, max_pixels=None):
        self.config = config = load_config(model_dir)
        path = os.path.join(model_dir, config["onnx"])
        try:
            with open(path, "rb") as f:
                model = f.read()
        except OSError as e:
            raise ReaderError(f"cannot read {path}: {e.strerror}; export it again (trainer.export --format=onnx)") \
                from None
        if config.get("onnx_sha256") and hashlib.sha256(model).hexdigest() != config["onnx_sha256"]:
            raise ReaderError(f"{path} is not the model {READER_FILE} describes (another sha256): export both again "
                              "(trainer.export --format=onnx)")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own exception types: a damaged or foreign file
            raise ReaderError(f"cannot load {path}: {str(e).splitlines()[0]}") from None
        self.charset = config["charset"]
        self.kind = config["output"]["kind"]
        self.shape = (config["input"]["height"], config["input"]["width"], config["input"]["channels"])
        self.preprocessing = config["preprocessing"]
        self.max_pixels = max_pixels
        self._input, self._output = config["input"]["name"], config["output"]["name"]

    def pixels(self, image):
        """bytes (an encoded image) or a path -> uint8 [height, width, channels], the model's input; ImageError if
        it cannot be read."""
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            data = preprocess.read_file(path)
            try:
                return preprocess.decode(data, *self.shape, self.preprocessing, self.max_pixels)
            except ImageError as e:
                raise type(e)(f"cannot read {path}: {e}") from None
        if not isinstance(image, (bytes, bytearray, memoryview)):
            raise ImageError(f"expected encoded image bytes or a path, got {type(image).__name__}")
        if not len(image):
            raise ImageError("empty image: 0 bytes")
        return preprocess.decode(bytes(image), *self.shape, self.preprocessing, self.max_pixels)

    def probabilities(self, pixels):
        """uint8 [B, height, width, channels] -> the model's probabilities [B, steps, classes] (float32)."""
        return self.session.run([self._output], {self._input: np.ascontiguousarray(pixels, np.uint8)})[0]

    def read_pixels(self, pixels):
        """uint8 [B, height, width, channels] -> [(text, confidence)] per image."""
        out = []
        for start in range(0, len(pixels), MAX_BATCH):
            texts, confidence = decoding.decode(self.probabilities(pixels[start:start + MAX_BATCH]), self.charset,
                                                self.kind)
            out.extend(zip(texts, confidence.tolist()))
        return out

    def read(self, image):
        """One image (bytes or a path) -> (text, confidence)."""
        return self.read_pixels(self.pixels(image)[None])[0]

    def read_batch(self, images):
        """Images (bytes or paths) -> [(text, confidence)], one model call per MAX_BATCH images; ImageError for the
        first image that cannot be read, naming its index."""
        if not len(images):
            return []
        batch = []
        for i, image in enumerate(images):
            try:
                batch.append(self.pixels(image))
            except ImageError as e:
                raise type(e)(f"image {i}: {e}") from None
        return self.read_pixels(np.stack(batch))
