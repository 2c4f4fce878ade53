"""Keras 3 captcha readers trained on a dataset folder written by the pipeline (see its spec.json).

    python -m trainer.main --model=ctc --data_dir=data/synth --model_dir=runs/ctc
    python -m trainer.evaluate --model_dir=runs/ctc --data_dir=data/synth --split=test
    python -m trainer.predict --model_dir=runs/ctc image1.png image2.jpg

The training library and its commands. It imports captcha_break (the reader's one-line errors) and never
experiments/ (which measures it) nor pipeline/ or Beam (spec.json is the contract).
"""
import logging
import os

# No TensorFlow or JAX start-up banners (oneDNN, CUDA plugins, XLA, TPU probing) around the trainer's own output;
# TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's C++ ones. Errors still arrive as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
logging.getLogger("tensorflow").setLevel(logging.WARNING)
logging.getLogger("jax").setLevel(logging.WARNING)
