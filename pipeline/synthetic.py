"""The synthetic source: Beam transforms that render captchas (pipeline.render) straight into their shards.

    python -m pipeline.main --output_dir=data/captcha       # the synthetic source is the default

Rendering and writing in one step keeps image bytes off Beam's shuffle: only tasks and spec entries move.
"""

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline import records
from pipeline.render import CaptchaRenderer, RenderSettings
from pipeline.shards import Task, plan_tasks, write_shard


class RenderShard(beam.DoFn):
    """Task -> the shard's spec entry, after rendering its records in index order and writing the file."""

    def __init__(self, settings: RenderSettings, seed: int, output_dir: str):
        self._settings, self._seed, self._output_dir = settings, seed, output_dir
        self._rendered = Metrics.counter("captcha", "records_rendered")
        self._renderer = None

    def setup(self):
        self._renderer = CaptchaRenderer(self._settings)

    def process(self, task: Task):
        yield write_shard(self._output_dir, task.split, task.shard, task.num_shards,
                          (self._record(task.split, index) for index in range(task.start, task.stop)))

    def _record(self, split: str, index: int) -> bytes:
        value = records.serialize(self._renderer.render(self._seed, split, index))
        self._rendered.inc()
        return value


class RenderShards(beam.PTransform):
    """Renders and writes every shard; outputs one spec entry per shard."""

    def __init__(self, settings, seed, sizes, num_shards, output_dir):
        super().__init__()
        self._settings, self._seed = settings, seed
        self._sizes, self._num_shards, self._output_dir = sizes, num_shards, output_dir

    def expand(self, pbegin):
        return (pbegin
                | "Plan" >> beam.Create(plan_tasks(self._sizes, self._num_shards))
                | "RenderAndWrite" >> beam.ParDo(RenderShard(self._settings, self._seed, self._output_dir)))
