"""Code hashes from the import graph (kvt.codehash): a job's hash follows every package file its
code can run, so editing any of them reruns it, and editing any other file does not."""

import shutil
from pathlib import Path

import kvt
import pytest
from kvt.codehash import files_hash, imported_files

PACKAGE = Path(kvt.__file__).resolve().parent


def write(root: Path, files: dict) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def toy(tmp_path):
    """A package `kvt` with every import form: absolute, relative (both levels), a submodule
    imported by `from pkg import name`, a lazy import inside a function, an import of a name
    (not a module), an outside package, and a module nothing imports."""
    return write(
        tmp_path / "kvt",
        {
            "__init__.py": "",
            "entry.py": "import os\nfrom .models import net\nfrom kvt.data.load import read\n"
            "def job():\n    from .report import fig\n",
            "models/__init__.py": "",
            "models/net.py": "from ..attention import ATTENTION\nfrom . import blocks\n",
            "models/blocks.py": "import torch\n",
            "attention.py": "ATTENTION = {}\n",
            "data/__init__.py": "from .util import helper\n",
            "data/util.py": "def helper(): pass\n",
            "data/load.py": "def read(): pass\n",
            "report/__init__.py": "",
            "report/fig.py": "",
            "unused.py": "import kvt.attention\n",
            "tool.py": "def f(): pass\nif __name__ == '__main__':\n    from kvt import unused\n",
        },
    )


def test_the_closure_follows_every_import_form(toy):
    assert imported_files(toy, ["kvt.entry"]) == [
        "__init__.py",
        "attention.py",
        "data/__init__.py",
        "data/load.py",
        "data/util.py",
        "entry.py",
        "models/__init__.py",
        "models/blocks.py",
        "models/net.py",
        "report/__init__.py",
        "report/fig.py",
    ]


def test_skipped_subpackages_and_what_only_they_import_are_left_out(toy):
    files = imported_files(toy, ["kvt.entry"], skip=("report", "models/blocks.py"))
    assert "report/fig.py" not in files and "report/__init__.py" not in files
    assert "models/blocks.py" not in files and "models/net.py" in files


def test_editing_any_imported_file_changes_the_hash_and_no_other(toy):
    files = imported_files(toy, ["kvt.entry"])
    before = files_hash(toy, files)
    assert files_hash(toy, files) == before  # deterministic
    for rel in files:
        path = toy / rel
        text = path.read_text()
        path.write_text(text + "# edited\n")
        assert files_hash(toy, imported_files(toy, ["kvt.entry"])) != before, rel
        path.write_text(text)
    (toy / "unused.py").write_text("# edited\n")
    assert files_hash(toy, imported_files(toy, ["kvt.entry"])) == before


def test_a_new_import_brings_its_module_into_the_hash(toy):
    before = imported_files(toy, ["kvt.entry"])
    assert "unused.py" not in before
    entry = toy / "entry.py"
    entry.write_text(entry.read_text() + "from . import unused\n")
    assert "unused.py" in imported_files(toy, ["kvt.entry"])


def test_the_real_package_anomaly_runtime_reads_images_through_the_vision_loader(tmp_path):
    """The bug this replaced: the anomaly features job reads images with data/vision.py, which a
    hand-written file list left out of anomaly's hash."""
    files = imported_files(PACKAGE, ["kvt.experiments.anomaly"], skip=("report", "bench"))
    assert "data/vision.py" in files and "models/set_anomaly.py" in files
    assert not any(f.startswith(("report/", "bench/")) for f in files)
    pkg = shutil.copytree(PACKAGE, tmp_path / "kvt", ignore=shutil.ignore_patterns("__pycache__"))
    before = files_hash(pkg, imported_files(pkg, ["kvt.experiments.anomaly"], skip=("report",)))
    with open(pkg / "data" / "vision.py", "a") as f:
        f.write("# a loader edit\n")
    assert (
        files_hash(pkg, imported_files(pkg, ["kvt.experiments.anomaly"], skip=("report",)))
        != before
    )


def test_a_modules_command_line_part_is_not_followed(toy):
    """`if __name__ == "__main__":` runs only as `python -m`, never when a job imports the module."""
    assert imported_files(toy, ["kvt.tool"]) == ["__init__.py", "tool.py"]
