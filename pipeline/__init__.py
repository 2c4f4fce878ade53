"""Apache Beam pipeline that renders labelled captchas into sharded TFRecords plus `spec.json`."""

__version__ = "0.1.0"
