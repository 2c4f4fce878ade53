"""Keras 3 captcha readers trained on a dataset folder written by the pipeline (see its spec.json).

    python -m trainer.main --model=ctc --data_dir=data/synth --model_dir=runs/ctc
    python -m trainer.evaluate --model_dir=runs/ctc --data_dir=data/synth --split=test
    python -m trainer.predict --model_dir=runs/ctc image1.png image2.jpg
"""
