"""The rooms' imports go one way (README's code map): experiments/ -> trainer/ -> captcha_break/, and pipeline/
apart from all three. Every import statement of every module is read from the source (those inside functions too),
so a wrong import fails here whether or not a test runs its line; captcha_break/ is also imported for real."""
import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TENSORFLOW_SIDE = {"tensorflow", "keras", "apache_beam", "jax", "torch", "tensorboard", "tf2onnx", "onnx", "absl"}
# room: (the only top-level modules it may import beside the standard library, or None for any; those it never may)
RULES = {
    "captcha_break": ({"captcha_break", "numpy", "PIL", "onnxruntime", "starlette", "uvicorn", "ddddocr"}, set()),
    "trainer": (None, {"experiments", "pipeline", "apache_beam", "tools"}),
    "experiments": (None, {"pipeline", "apache_beam", "tools"}),
    "pipeline": (None, {"trainer", "experiments", "captcha_break", "tools"}),
}


def imported(source):
    """{top-level module: line of its first import} of every absolute import in `source`."""
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # a relative import stays in its package
            names = [node.module]
        else:
            continue
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


def wrong_imports(room, source):
    """[(module, line)] of the imports that `source`, a module of `room`, may not make."""
    allowed, forbidden = RULES[room]
    return sorted((name, line) for name, line in imported(source).items()
                  if name in forbidden or allowed is not None and name not in allowed | sys.stdlib_module_names)


@pytest.mark.parametrize("room", sorted(RULES))
def test_every_import_goes_the_rooms_way(room):
    modules = sorted((ROOT / room).rglob("*.py"))
    assert modules, f"no modules in {room}/"
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in modules for name, line in wrong_imports(room, path.read_text())]
    assert not wrong, "against the rooms' one-way imports (README, Code map): " + "; ".join(wrong)


@pytest.mark.parametrize("room, source", [
    ("captcha_break", "import tensorflow as tf"),
    ("captcha_break", "def read():\n    from keras import ops\n"),  # inside a function too
    ("captcha_break", "from absl import flags"),
    ("captcha_break", "from trainer.errors import UserError"),
    ("captcha_break", "import safeio.locks"),
    ("trainer", "from experiments import report"),
    ("trainer", "import apache_beam as beam"),
    ("trainer", "from pipeline.main import run"),
    ("experiments", "import pipeline.sweep"),
    ("pipeline", "from captcha_break import reader"),
])
def test_a_wrong_import_is_caught(room, source):
    assert wrong_imports(room, source)


def test_the_rooms_own_imports_pass():
    assert not wrong_imports("captcha_break", "import json\nimport numpy as np\nfrom PIL import Image\nfrom . import x")
    assert not wrong_imports("trainer", "import keras\nfrom captcha_break.errors import exit_on_error")
    assert not wrong_imports("experiments", "import sweepfile\nfrom trainer import train\nfrom captcha_break import x")


def test_captcha_break_imports_without_tensorflow():
    """Every module of captcha_break/, its commands included, in a fresh interpreter: nothing of TensorFlow, Keras,
    Beam or absl, nor of the other rooms, is in sys.modules."""
    code = ("import importlib, pkgutil, sys, captcha_break\n"
            "for module in pkgutil.iter_modules(captcha_break.__path__):\n"
            "    importlib.import_module('captcha_break.' + module.name)\n"
            "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert {"captcha_break", "onnxruntime", "starlette"} <= loaded
    assert not loaded & (TENSORFLOW_SIDE | {"trainer", "experiments", "pipeline"})
