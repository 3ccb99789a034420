"""Which files of the package a job runs, from the import graph: its code hash follows them.

Snakemake does not track Python imports, so every train and eval job gets, as a param, a hash of
the package files its code can execute: the modules its entry points import, transitively
(`import` statements anywhere in a module, lazy ones inside functions included, but not in
its `if __name__ == "__main__":` part, and the `__init__.py` of every package on the way, which
importing a submodule runs). Editing any of them
reruns the job; editing a module it cannot reach (another family's model, the report) does not.
Read with `ast`, without importing anything: the DAG is built without torch.
"""

import ast
import hashlib
from pathlib import Path

PACKAGE = "kvt"


def module_file(package: Path, module: str) -> Path | None:
    """The file of `module` (dotted, starting with the package's name) under `package`, or None
    where it is not a module of the package (a name imported from a module, or another package)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = Path(package).joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _parents(module: str) -> list[str]:
    """'kvt.data.text' -> ['kvt', 'kvt.data']: the packages whose __init__ an import runs."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_main_guard(node) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and any(
            isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators
        )
    )


def _imports(path: Path, module: str) -> set[str]:
    """Dotted names of the modules (and of names in modules) that the source of `module` imports."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    out = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # a module's `if __name__ == "__main__":` part runs as a command, never on import
    body = [node for node in tree.body if not _is_main_guard(node)]
    for node in (n for top in body for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            out.add(base)
            # `from pkg import name`: name may be a submodule
            out.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return out


def imported_files(package: Path, modules, skip: tuple[str, ...] = ()) -> list[str]:
    """Files (relative to `package`, sorted) of `modules` and of every package module they import,
    transitively. `skip`: subpackages or files (relative, e.g. "report", "bench/step.py") left out,
    with what only they import."""
    package = Path(package)
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        for candidate in (*_parents(name), name):
            path = module_file(package, candidate)
            if path is None or candidate in seen:
                continue
            rel = path.relative_to(package)
            if rel.parts[0] in skip or str(rel) in skip:
                continue
            seen[candidate] = path
            todo.extend(_imports(path, candidate))
    return sorted(str(p.relative_to(package)) for p in seen.values())


def files_hash(package: Path, files) -> str:
    """Content hash of `files` (relative to `package`): names and bytes."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(str(rel).encode() + b"\0" + (Path(package) / rel).read_bytes())
    return digest.hexdigest()[:16]
