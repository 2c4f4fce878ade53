"""Every `python -m MODULE --flag ...` line in README.md and docs/ names a real module and only flags it defines.

The commands are parsed, never run: the absl modules are imported one after another in one subprocess, each
module's flags read and then deleted before the next (absl flags are process-wide); argparse modules give their
parser through `build_parser()`; pipeline.main and pipeline.sweep also take every Apache Beam pipeline option.
"""
import functools
import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ROOMS = "pipeline|trainer|experiments|captcha_break|tools"
COMMAND = re.compile(rf"python3? -m ((?:{ROOMS})\.[\w.]+)((?:[ \t]+(?:\\\n)?[ \t]*[^\s`|]+)*)")
ABSL_HELP = ("help", "helpfull", "helpshort", "helpxml")  # handled by absl.app, not in FLAGS
ARGPARSE_MODULES = {"pipeline.main": "pipeline.config", "pipeline.sweep": "pipeline.sweep",
                    "pipeline.benchmark": "pipeline.benchmark", "tools.gpu_check.run": "tools.gpu_check.run",
                    "tools.gpu_check.stage": "tools.gpu_check.stage", "tools.gpu_check.render": "tools.gpu_check.render",
                    **{f"captcha_break.{name}": f"captcha_break.{name}" for name in ("serve", "label", "benchmark")}}
TAKES_BEAM_OPTIONS = ("pipeline.main", "pipeline.sweep")
ABSL_FLAGS_SCRIPT = """
import importlib, json, sys
from absl import flags
base, found = set(flags.FLAGS), {}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
        getattr(module, "define_flags", lambda: None)()
    except Exception as e:
        found[name] = repr(e)
        continue
    found[name] = {flag: isinstance(flags.FLAGS[flag], flags.BooleanFlag) for flag in flags.FLAGS}
    for flag in set(flags.FLAGS) - base:
        delattr(flags.FLAGS, flag)
print(json.dumps(found))
"""


def doc_commands():
    """[(doc file name, module, [flag names])] of every command line in the docs."""
    found = []
    for doc in DOCS:
        for match in COMMAND.finditer(doc.read_text()):
            tokens = match.group(2).replace("\\\n", " ").split()
            names = [t[2:].split("=", 1)[0].rstrip("?.,;:)") for t in tokens if t.startswith("--") and len(t) > 2]
            found.append((doc.name, match.group(1), names))
    return found


@functools.lru_cache(maxsize=None)
def absl_flags():
    """{module: {flag name: takes --noNAME} or the error its import raised} for every absl module in the docs."""
    modules = sorted({m for _, m, _ in doc_commands() if m not in ARGPARSE_MODULES} | {"trainer.main"})
    result = subprocess.run([sys.executable, "-c", ABSL_FLAGS_SCRIPT, *modules], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr.strip()[-500:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def flags_of(module):
    """{flag name: takes --noNAME} that `python -m module` accepts."""
    if module in ARGPARSE_MODULES:
        import importlib
        parser = importlib.import_module(ARGPARSE_MODULES[module]).build_parser()
        names = {option[2:]: False for action in parser._actions for option in action.option_strings}
        if module in TAKES_BEAM_OPTIONS:
            from pipeline.config import _beam_parser
            names.update({option[2:]: False for action in _beam_parser()._actions
                          for option in action.option_strings})
        return names
    found = absl_flags()[module]
    assert isinstance(found, dict), f"python -m {module}: cannot import it: {found}"
    return {**found, **{name: False for name in ABSL_HELP}}


def test_the_docs_hold_commands_of_every_room():
    modules = {module for _, module, _ in doc_commands()}
    assert {"pipeline.main", "trainer.main", "trainer.evaluate", "trainer.predict", "experiments.protocol",
            "captcha_break.serve"} <= modules


@pytest.mark.parametrize("module", sorted({module for _, module, _ in doc_commands()}))
def test_every_documented_flag_exists(module):
    known = flags_of(module)
    unknown = []
    for doc, command_module, names in doc_commands():
        if command_module != module:
            continue
        for name in names:
            negated = name.startswith("no") and known.get(name[2:]) is True
            if name not in known and not negated:
                unknown.append(f"{doc}: --{name}")
    assert not unknown, f"python -m {module} defines no flag {', '.join(unknown)}"


def test_an_unknown_flag_is_caught():
    assert "lenght" not in flags_of("pipeline.main") and "length" in flags_of("pipeline.main")
    assert "epochs" in flags_of("trainer.main") and "noverify_shards" not in flags_of("trainer.main")
    assert "split" in flags_of("trainer.evaluate") and "split" not in flags_of("trainer.main"), "each module's own"
    assert flags_of("trainer.main")["verify_shards"] is True  # so --noverify_shards is accepted
