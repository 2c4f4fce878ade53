#!/usr/bin/env bash
# Renders a captcha dataset. On first use it installs the project into .venv beside this script.
#   ./run_pipeline.sh                     # the default: 100k/10k/10k captchas into data/captcha
#   ./run_pipeline.sh --output_dir=data/digits5 --charset=digits --length=5 --train_size=20000
#   ./run_pipeline.sh --runner=dask       # on a Dask LocalCluster; first: .venv/bin/pip install -e '.[dask]'
#   ./run_pipeline.sh --verbosity=info    # Beam's and the workers' logs instead of the progress line
# Every argument is passed through to `python -m pipeline.main` (Beam options included).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -f "$here/.venv/.installed" ] || [ "$here/setup.py" -nt "$here/.venv/.installed" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q -e "$here"
  touch "$here/.venv/.installed"
fi
exec "$here/.venv/bin/python" -m pipeline.main "$@"
