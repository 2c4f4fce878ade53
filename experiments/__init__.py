"""Measurements about the trainer: the accuracy protocol, training sweeps, speed benchmarks, the real-captcha and
pre-training benchmarks, their shared result rows and tables (report) and their figures comparing runs (plots).

    python -m experiments.protocol --model=ctc --data_dir=data/synth --model_dir=runs/ctc
    python -m experiments.sweep --sweep_file=sweeps/example.yaml --output_root=data/sweep-example
    python -m experiments.real_benchmark --real_root=../shared/real --output_root=runs/real --train_minutes=20

Imports the training library (trainer/); the library never imports this package.
"""
import trainer  # noqa: F401 (its logging settings, before the modules here import TensorFlow)
