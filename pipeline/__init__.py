"""Apache Beam pipeline that renders labelled captchas into sharded TFRecords plus `spec.json`."""

import logging

__version__ = "0.1.0"


class _NoGcpNotice(logging.Filter):
    """Drops the line that `import apache_beam` logs on every start without the [gcp] extra ("apitools not
    found, and bigquery client libraries are not available ..."): it concerns BigQuery, never used here."""

    def filter(self, record):
        return not record.getMessage().startswith("apitools not found")


logging.getLogger().addFilter(_NoGcpNotice())
