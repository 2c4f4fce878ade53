"""The installed console scripts name functions that exist (checked from the source: importing every entry
module in one process would define the shared absl training flags twice)."""
import ast
import importlib.metadata
import importlib.util


def test_every_console_script_names_a_function_of_its_module():
    scripts = [ep for ep in importlib.metadata.distribution("captcha-break").entry_points
               if ep.group == "console_scripts"]
    assert {"captcha-render", "captcha-train", "captcha-evaluate", "captcha-predict"} <= {ep.name for ep in scripts}
    for ep in scripts:
        spec = importlib.util.find_spec(ep.module)
        assert spec is not None, f"{ep.name}: no module {ep.module}"
        with open(spec.origin) as f:
            functions = {node.name for node in ast.parse(f.read()).body if isinstance(node, ast.FunctionDef)}
        assert ep.attr in functions, f"{ep.name}: {ep.module} has no function {ep.attr}"
