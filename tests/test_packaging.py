"""The installed console scripts name functions that exist (checked from the source: importing every entry
module in one process would define the shared absl training flags twice), and the reader's own distribution."""
import ast
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_console_script_names_a_function_of_its_module():
    scripts = [ep for ep in importlib.metadata.distribution("captcha-break").entry_points
               if ep.group == "console_scripts"]
    assert {"captcha-render", "captcha-train", "captcha-evaluate", "captcha-predict"} <= {ep.name for ep in scripts}
    for ep in scripts:
        spec = importlib.util.find_spec(ep.module)
        assert spec is not None, f"{ep.name}: no module {ep.module}"
        with open(spec.origin) as f:
            body = ast.parse(f.read()).body
        functions = {node.name for node in body if isinstance(node, ast.FunctionDef)}
        functions |= {node.targets[0].id for node in body if isinstance(node, ast.Assign)  # run = console_script(...)
                      and isinstance(node.value, ast.Call) and isinstance(node.targets[0], ast.Name)}
        assert ep.attr in functions, f"{ep.name}: {ep.module} has no function {ep.attr}"


def test_the_reader_distribution_holds_the_serving_package_and_needs_only_onnxruntime_numpy_pillow(tmp_path):
    """`pip install ./captcha_break` (captcha-break-reader): built here from a copy, without network or build
    isolation, its wheel holds captcha_break/ alone and requires nothing of TensorFlow, Keras or Beam."""
    source = tmp_path / "captcha_break"
    shutil.copytree(os.path.join(REPO, "captcha_break"), source, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(tmp_path / "wheel")], check=True, capture_output=True, timeout=300)
    [wheel] = (tmp_path / "wheel").glob("captcha_break_reader-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("/METADATA"))).decode()
    modules = {n.split("/")[1] for n in names if n.startswith("captcha_break/")}
    assert {"reader.py", "preprocess.py", "decoding.py", "serve.py", "label.py", "benchmark.py"} <= modules
    assert all(n.startswith(("captcha_break/", "captcha_break_reader-")) for n in names)
    required = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    assert sorted(r.split(">=")[0] for r in required if "extra ==" not in r) == ["Pillow", "numpy", "onnxruntime"]
