"""Packaging for the captcha breaker; also Beam's `--setup_file` for remote workers.

    pip install -e '.[test]'
    python -m pipeline.main --runner=DataflowRunner --setup_file=./setup.py ...
"""
import setuptools

setuptools.setup(
    name="captcha-break",
    version="0.1.0",
    description="Render labelled captchas with Apache Beam and train Keras 3 captcha readers.",
    packages=setuptools.find_packages(include=["pipeline", "pipeline.*", "trainer", "trainer.*"]),
    python_requires=">=3.10,<3.13",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "apache-beam[tfrecord]>=2.77,<2.78",
        "google-crc32c>=1.5",  # fast TFRecord checksums (Beam falls back to pure-Python crcmod)
        # 0.7.0 draws from `random` (seedable) and keeps the intended warp; see README.
        "captcha==0.7.0",
        "numpy>=1.26",
        "Pillow>=10",
        "absl-py>=2.1",
        "tqdm>=4.66",
        "matplotlib>=3.8",
        "tensorboard>=2.21,<2.22",  # the TensorBoard callback; TF 2.21 no longer depends on it
        "PyYAML>=6",
    ],
    extras_require={
        "test": ["pytest>=8"],
        "gcp": ["apache-beam[gcp]>=2.77,<2.78"],
        "peers": ["ddddocr>=1.6"],  # trainer.real_benchmark's zero-shot comparison
    },
)
