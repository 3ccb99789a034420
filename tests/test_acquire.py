"""kvt.data.acquire: fetch with retries (local folder, file:// URL, a failing http source), the
retry policy, atomic placing, and the command line (`stage` one dataset from a local folder,
`status` of the data folder) on fixture files in the real formats. Never downloads: http sources
are a monkeypatched urlopen."""

import hashlib
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kvt.data import acquire, commands
from kvt.data import text as T
from kvt.data import text_fixtures as FX
from kvt.data import vision as V
from test_vision_archives import official_archives, official_files, write_archives

DATA = b"one file of a dataset\n" * 50
REPO = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


@pytest.fixture
def source(tmp_path):
    """A local folder holding one file; its sha256 and md5."""
    folder = tmp_path / "source"
    folder.mkdir()
    (folder / "file.bin").write_bytes(DATA)
    return folder, hashlib.sha256(DATA).hexdigest(), hashlib.md5(DATA).hexdigest()


# ---------------------------------------------------------------- fetch and retry


@pytest.mark.parametrize("as_url", [False, True])
def test_fetch_copies_checks_and_places(source, tmp_path, as_url):
    folder, sha, md5 = source
    base = folder.as_uri() if as_url else folder
    dest = tmp_path / "data" / "sub" / "file.bin"
    path = acquire.fetch(acquire.source_path(base, "file.bin"), dest, sha, wait=0)
    assert path == dest and dest.read_bytes() == DATA and _files(tmp_path / "data") == [dest]
    md5_dest = tmp_path / "md5" / "file.bin"
    assert (
        acquire.fetch(
            acquire.source_path(base, "file.bin"), md5_dest, md5, algorithm="md5", wait=0
        ).read_bytes()
        == DATA
    )
    assert (
        acquire.fetch("/nowhere/file.bin", dest, sha) == dest
    )  # present and right: no source needed


def test_fetch_refuses_a_wrong_source_and_a_wrong_existing_file(source, tmp_path):
    folder, sha, _ = source
    dest = tmp_path / "data" / "file.bin"
    with pytest.raises(acquire.ChecksumError, match="truncated or altered") as err:
        acquire.fetch(str(folder / "file.bin"), dest, "0" * 64, wait=0)
    assert sha in str(err.value) and str(dest) in str(err.value)
    assert _files(tmp_path / "data") == []  # neither the file nor a temporary one
    dest.write_bytes(DATA[:-1])
    with pytest.raises(acquire.ChecksumError, match=f"{dest} is truncated or altered.*Delete it"):
        acquire.fetch(str(folder / "file.bin"), dest, sha, wait=0)
    assert dest.read_bytes() == DATA[:-1]  # kept as it was


def test_fetch_missing_local_source_names_it(tmp_path, monkeypatch):
    sleeps = []
    monkeypatch.setattr(acquire.time, "sleep", sleeps.append)
    with pytest.raises(acquire.FetchError, match="1 try"):  # a local file will not appear: no retry
        acquire.fetch(
            (tmp_path / "nowhere/file.bin").as_uri(),
            tmp_path / "data/file.bin",
            "0" * 64,
            retries=3,
        )
    assert sleeps == []
    with pytest.raises(acquire.FetchError, match="nowhere/file.bin: it does not exist.*use a copy"):
        acquire.fetch(
            str(tmp_path / "nowhere/file.bin"),
            tmp_path / "data/file.bin",
            "0" * 64,
            hint="use a copy",
        )
    assert not (tmp_path / "data").exists() or _files(tmp_path / "data") == []


def _urlopen_failing(calls, error):
    def urlopen(url, *args, **kwargs):
        calls.append(url)
        raise error

    return urlopen


def test_fetch_retries_network_errors_then_names_the_source(tmp_path, monkeypatch):
    calls, sleeps = [], []
    monkeypatch.setattr(
        urllib.request, "urlopen", _urlopen_failing(calls, urllib.error.URLError("down"))
    )
    monkeypatch.setattr(acquire.time, "sleep", sleeps.append)
    dest = tmp_path / "data" / "file.bin"
    with pytest.raises(acquire.FetchError) as err:
        acquire.fetch("https://example.invalid/file.bin", dest, "0" * 64, retries=3, wait=1.5)
    assert calls == ["https://example.invalid/file.bin"] * 3 and sleeps == [1.5, 1.5]
    assert "3 tries" in str(err.value) and "down" in str(err.value) and str(dest) in str(err.value)
    assert _files(tmp_path / "data") == []


def test_fetch_does_not_retry_not_found(tmp_path, monkeypatch):
    calls = []
    not_found = urllib.error.HTTPError("https://example.invalid/x", 404, "Not Found", None, None)
    monkeypatch.setattr(urllib.request, "urlopen", _urlopen_failing(calls, not_found))
    with pytest.raises(acquire.FetchError, match="1 try"):
        acquire.fetch("https://example.invalid/x", tmp_path / "x", "0" * 64, retries=3, wait=0)
    assert len(calls) == 1


def test_retry_gives_up_after_the_last_try_and_lets_other_errors_through(monkeypatch):
    monkeypatch.setattr(acquire.time, "sleep", lambda s: None)
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise OSError("flaky")
        return "done"

    assert acquire.retry(flaky, retries=3, wait=0) == "done" and len(tries) == 3
    with pytest.raises(acquire.GaveUp, match="2 tries: OSError: always") as err:
        acquire.retry(lambda: (_ for _ in ()).throw(OSError("always")), retries=2, wait=0)
    assert isinstance(err.value.error, OSError) and err.value.tries == 2
    with pytest.raises(KeyError):  # not one of `errors`: at once
        acquire.retry(lambda: {}["x"], retries=3, wait=0)
    with pytest.raises(ValueError, match="retries must be at least 1"):
        acquire.retry(lambda: None, retries=0, wait=0)


def test_scratch_is_removed_and_move_into_places_files(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(RuntimeError):
        with acquire.scratch(root, "x") as tmp:
            (tmp / "a").write_bytes(b"a")
            raise RuntimeError("failed half way")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with acquire.scratch(root, "x") as tmp:
        (tmp / "d").mkdir()
        (tmp / "d" / "a").write_bytes(b"a")
        assert acquire.move_into(tmp, root, ["d/a"]) == [root / "d/a"]
    assert _files(tmp_path) == [root / "d/a"]


def test_dataset_state():
    assert commands.dataset_state({"a": "verified", "b": "verified"}) == "verified"
    assert commands.dataset_state({"a": "verified", "b": "missing"}) == "missing"
    assert commands.dataset_state({"a": "corrupt", "b": "missing"}) == "corrupt"
    assert commands.dataset_state({"a": "fixture", "b": "verified"}) == "fixture"


# ---------------------------------------------------------------- the command line: stage


def test_stage_images_from_a_folder_of_archives(tmp_path, monkeypatch, capsys):
    archives = write_archives("mnist", tmp_path / "archives")
    official_archives(monkeypatch, archives, "mnist")
    official_files(monkeypatch, tmp_path / "archives" / "unpacked", "mnist")
    root = tmp_path / "data"
    assert commands.main(["stage", "mnist", str(tmp_path / "archives"), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"mnist: 4 file(s) present and verified in {root}" in out
    for rel in V.spec_of("mnist").files:
        assert (
            rel in out
            and (root / rel).read_bytes() == (tmp_path / "archives/unpacked" / rel).read_bytes()
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archives", "data"]  # no temporary folder
    # what the data rule then finds: the same files, already staged
    info = V.prepare("mnist", root, download_missing=False, fixtures=False)
    assert info["source"] == "staged" and set(info["files"]) == set(V.spec_of("mnist").files)


def test_stage_names_what_is_missing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    root = tmp_path / "data"
    assert commands.main(["stage", "cifar10", str(tmp_path / "empty"), "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"cifar10: not staged from {tmp_path / 'empty'}" in err
    assert f"{tmp_path / 'empty'} does not hold every archive of cifar10" in err
    assert "cifar-10-python.tar.gz" in err and "data_batch_1" in err
    assert not root.exists() or _files(root) == []


def test_stage_refuses_a_corrupt_archive_and_places_nothing(tmp_path, monkeypatch, capsys):
    archives = write_archives("cifar100", tmp_path / "archives")
    official_archives(monkeypatch, archives, "cifar100")
    path = archives["cifar-100-python.tar.gz"]
    path.write_bytes(path.read_bytes()[:-200])
    root = tmp_path / "data"
    assert (
        commands.main(["stage", "cifar100", str(tmp_path / "archives"), "--root", str(root)]) == 1
    )
    err = capsys.readouterr().err
    assert f"archive {path} is truncated or altered" in err
    assert not root.exists() or _files(root) == []


def _text_mirror(tmp_path, monkeypatch) -> Path:
    """A folder laid out like the raw-file URLs holding fixture texts, registered as the recorded
    files (fixtures cannot match the real sums)."""
    mirror = tmp_path / "mirror"
    sums = {rel: meta["sha256"] for rel, meta in FX.write_text_fixtures(mirror).items()}
    monkeypatch.setattr(
        T, "SOURCES", {name: (rel, sums[rel]) for name, (rel, _) in T.SOURCES.items()}
    )
    return mirror


def test_stage_text_from_a_mirror(tmp_path, monkeypatch, capsys):
    mirror = _text_mirror(tmp_path, monkeypatch)
    root = tmp_path / "data"
    assert commands.main(["stage", "multi30k", str(mirror), "--root", str(root)]) == 0
    assert "multi30k: 6 file(s) present and verified" in capsys.readouterr().out
    for rel, _ in T.SOURCES.values():
        if rel.startswith(T.MULTI30K):
            assert (root / rel).read_bytes() == (mirror / rel).read_bytes()
    assert not (root / T.SHAKESPEARE).exists()  # one dataset only


def test_stage_text_names_a_missing_and_a_corrupt_file(tmp_path, monkeypatch, capsys):
    mirror = _text_mirror(tmp_path, monkeypatch)
    (mirror / T.SHAKESPEARE).unlink()
    root = tmp_path / "data"
    assert commands.main(["stage", "shakespeare", str(mirror), "--root", str(root)]) == 1
    assert f"{mirror / T.SHAKESPEARE}: it does not exist" in capsys.readouterr().err
    (mirror / T.SHAKESPEARE).write_text("not the play\n")
    assert commands.main(["stage", "shakespeare", str(mirror), "--root", str(root)]) == 1
    assert "truncated or altered" in capsys.readouterr().err
    assert _files(root) == []


def test_missing_text_names_the_stage_command(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(acquire.DataMissingError) as err:
        T.prepare("multi30k", root, download=False)
    assert acquire.stage_command("multi30k", root) in str(err.value)
    assert (
        acquire.stage_command("multi30k", root)
        == f"python -m kvt.data.acquire stage multi30k FOLDER --root {root}"
    )


def test_stage_rejects_unknown_datasets_and_folders(tmp_path, capsys):
    assert commands.main(["stage", "svhn", str(tmp_path), "--root", str(tmp_path)]) == 2
    assert "unknown dataset 'svhn'; known: mnist" in capsys.readouterr().err
    assert commands.main(["stage", "mnist", str(tmp_path / "none"), "--root", str(tmp_path)]) == 2
    assert "is not a folder" in capsys.readouterr().err


# ---------------------------------------------------------------- the command line: status


def _dataset_lines(out: str) -> dict[str, str]:
    """{dataset: its line} of status's output (indented two spaces; details six)."""
    return {
        line.split()[0]: line for line in out.splitlines() if line[:2] == "  " and line[2] != " "
    }


def test_status_reports_verified_fixture_missing_and_corrupt(tmp_path, monkeypatch, capsys):
    mirror = _text_mirror(tmp_path, monkeypatch)  # the texts of the mirror count as recorded
    root = tmp_path / "data"
    T.prepare("multi30k", root, base=mirror)
    V.prepare("fashion_mnist", root, download_missing=False, fixtures=True)
    V.prepare("mnist", root, download_missing=False, fixtures=True)
    bad = root / "MNIST/raw/t10k-labels-idx1-ubyte"
    bad.write_bytes(bad.read_bytes()[:-1])
    assert commands.main(["status", "--root", str(root)]) == 1  # something is corrupt
    lines = _dataset_lines(capsys.readouterr().out)
    assert "present and verified" in lines["multi30k"]
    assert "fixtures" in lines["fashion_mnist"]
    assert "corrupt (1 of 4 files)" in lines["mnist"]
    assert "missing (3 of 3 files)" in lines["cifar100"] and "missing" in lines["shakespeare"]
    assert "no files" in lines["digits"]


def test_status_names_the_corrupt_file_and_the_stage_command(tmp_path, capsys):
    root = tmp_path / "data"
    V.prepare("mnist", root, download_missing=False, fixtures=True)
    bad = root / "MNIST/raw/t10k-labels-idx1-ubyte"
    bad.write_bytes(b"\0" * 10)
    commands.main(["status", "--root", str(root)])
    out = capsys.readouterr().out
    assert f"corrupt: {bad}" in out
    assert f"python -m kvt.data.acquire stage mnist FOLDER --root {root}" in out


def test_status_default_root_is_the_configurations(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert commands._default_root() == Path("data")
    monkeypatch.chdir(tmp_path)  # no config.yaml here
    with pytest.raises(SystemExit, match="give --root"):
        commands._default_root()


def test_runtime_modules_load_no_fixture_writer():
    code = "import sys, kvt.data.text, kvt.data.vision; print(any(m.endswith('_fixtures') for m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "False", res.stderr


def test_module_runs_as_a_command(tmp_path):
    """`python -m kvt.data.acquire`: the entry point itself (one subprocess)."""
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvt.data.acquire",
            "stage",
            "cifar10",
            str(tmp_path),
            "--root",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        res.returncode == 1
        and "cifar10: not staged" in res.stderr
        and "Traceback" not in res.stderr
    )
