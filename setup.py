"""Packaging for the captcha breaker; also Beam's `--setup_file` for remote workers.

    pip install -e '.[test]'
    python -m pipeline.main --runner=DataflowRunner --setup_file=./setup.py ...

Each command is also a console script (captcha-render, captcha-train, ...); `python -m ...` works the same.
"""
import setuptools

READER = ["onnxruntime>=1.20", "numpy>=1.26", "Pillow>=10"]
SERVE = [*READER, "starlette>=0.40", "uvicorn>=0.30", "python-multipart>=0.0.18"]  # multipart: Starlette's forms
ONNX = ["onnx>=1.16", "tf2onnx>=1.16", "onnxruntime>=1.20"]  # tested with onnx 1.23, tf2onnx 1.17, onnxruntime 1.32

setuptools.setup(
    name="captcha-break",
    version="0.1.0",
    description="Render labelled captchas with Apache Beam and train Keras 3 captcha readers.",
    # The three rooms (README's code map): trainer (the training library), experiments (measurements about it),
    # captcha_break (the reader without TensorFlow); beside them the pipeline and what both halves share.
    packages=setuptools.find_packages(include=["pipeline", "pipeline.*", "trainer", "trainer.*", "experiments",
                                               "captcha_break", "sweepfile", "safeio"]),
    python_requires=">=3.10,<3.13",  # the Python versions with wheels of both TensorFlow 2.21 and Beam 2.77
    install_requires=[
        "tensorflow>=2.21,<2.22",  # tf.data, shard checks, the SavedModel; the version the tests ran on
        "keras>=3.15,<4",  # every trainer module; 3.15 runs one model code on TensorFlow, JAX and PyTorch
        "apache-beam[tfrecord]>=2.77,<2.78",
        "google-crc32c>=1.5",  # fast TFRecord checksums (Beam falls back to pure-Python crcmod)
        # 0.7.0 draws from `random` (seedable) and keeps the intended warp; see README.
        "captcha==0.7.0",
        "numpy>=1.26",
        "Pillow>=10",
        "fonttools>=4.40",  # the fonts' glyph tables: a --charset character no font draws is refused
        "absl-py>=2.1",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "tensorboard>=2.21,<2.22",  # the TensorBoard callback; TF 2.21 no longer depends on it
        "PyYAML>=6",
    ],
    extras_require={
        # pytest-xdist: the suite runs on 2 processes (pytest.ini -n 2); jax: the JAX-backend training test (a CPU
        # build: ~100 MB of wheels with scipy, ~500 MB installed); dask: the DaskRunner test.
        # onnx ... httpx: the serving tests (ONNX export, captcha_break's reader, service and pre-labelling).
        "test": ["pytest>=8", "pytest-xdist>=3.6", "jax>=0.10,<0.11", "apache-beam[dask]>=2.77,<2.78",
                 *ONNX, *SERVE, "httpx>=0.27"],
        "onnx": ONNX,  # trainer.export --format=onnx
        # captcha_break.reader needs only these (it imports neither TensorFlow, Keras nor Beam); on a host without
        # TensorFlow, `pip install ./captcha_break` installs it as a distribution of its own with these alone.
        "reader": READER,
        "serve": SERVE,  # captcha_break.serve: the reader behind Starlette on uvicorn
        "jax": ["jax>=0.10,<0.11"],  # KERAS_BACKEND=jax; on NVIDIA GPUs: pip install 'jax[cuda12]' instead
        "torch": ["torch>=2.13,<2.14"],  # KERAS_BACKEND=torch (docs/training.md: its CPU-only build)
        "gcp": ["apache-beam[gcp]>=2.77,<2.78"],
        "dask": ["apache-beam[dask]>=2.77,<2.78"],  # --runner=dask: dask and distributed
        "peers": ["ddddocr>=1.6"],  # experiments.real_benchmark's zero-shot comparison
    },
    entry_points={"console_scripts": [
        "captcha-render=pipeline.main:main",
        "captcha-sweep-data=pipeline.sweep:main",
        "captcha-train=trainer.main:run",
        "captcha-evaluate=trainer.evaluate:run",
        "captcha-predict=trainer.predict:run",
        "captcha-export=trainer.export:run",
        "captcha-sweep-train=experiments.sweep:run",
        "captcha-protocol=experiments.protocol:run",
        "captcha-real-benchmark=experiments.real_benchmark:run",
        "captcha-pretrain-sweep=experiments.pretrain_sweep:run",
        "captcha-serve=captcha_break.serve:main",
        "captcha-label=captcha_break.label:main",
    ]},
)
