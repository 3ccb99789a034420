"""The names of the attention registry, read from attention.py's `@register("...")` decorators
without importing torch, so the DAG and the config schema are built torch-free. A test checks
they equal `kvt.attention.ATTENTION`."""

import ast
from functools import cache
from pathlib import Path


@cache
def attention_names() -> list[str]:
    tree = ast.parse((Path(__file__).with_name("attention.py")).read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register"
                        and deco.args and isinstance(deco.args[0], ast.Constant)):
                    names.append(deco.args[0].value)
    return names
