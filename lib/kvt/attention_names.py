"""The names of the attention registry, read from attention.py's `@register("...")` decorators
without importing torch, so the DAG and the config schema are built torch-free. A test checks
they equal `kvt.attention.ATTENTION`."""

import ast
from functools import cache
from pathlib import Path

# The class of attention.py whose subclasses project queries: d x d projections Q, K, V, O (4);
# every other variant has K, V and O only (3).
QUERY_CLASS = "QKVAttention"


@cache
def _registry() -> tuple[dict[str, str], dict[str, list[str]]]:
    """({registered name: class name}, {class name: base class names}) of attention.py."""
    tree = ast.parse((Path(__file__).with_name("attention.py")).read_text())
    registered, bases = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]
            for deco in node.decorator_list:
                if (
                    isinstance(deco, ast.Call)
                    and getattr(deco.func, "id", None) == "register"
                    and deco.args
                    and isinstance(deco.args[0], ast.Constant)
                ):
                    registered[deco.args[0].value] = node.name
    return registered, bases


def attention_names() -> list[str]:
    return list(_registry()[0])


def projections(name: str) -> int:
    """d x d projections per layer of variant `name`: 4 where its class descends from the query
    class (qkv, qkv_pos), else 3 (the kv variants)."""
    registered, bases = _registry()
    if name not in registered:
        raise ValueError(f"unknown attention {name!r}; known: {', '.join(registered)}")
    todo, seen = [registered[name]], set()
    while todo:
        cls = todo.pop()
        if cls == QUERY_CLASS:
            return 4
        if cls not in seen:
            seen.add(cls)
            todo += bases.get(cls, [])
    return 3


def added_to(name: str) -> str | None:
    """The variant that `name` adds one thing to, its baseline in the benchmarks' ratios: kv
    drops qkv's query; a variant with a query projection (qkv_pos) adds to qkv, a query-free one
    (kv_pos, kv_rel, kv_shared) to kv; qkv: None."""
    if name == "qkv":
        projections(name)
        return None
    return "qkv" if name == "kv" or projections(name) == 4 else "kv"
