"""Path settings (kvt.path_settings), checked when the configuration is resolved, before any job:
each bad path stops with the setting named; folders that do not exist yet are fine."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kvt.config import ConfigError, load_config
from kvt.families import FAMILIES
from kvt.path_settings import FILE_ROOM, longest_output

ROOT = Path(__file__).resolve().parents[1]


def resolved(**overrides) -> dict:
    return load_config(overrides, ROOT)


def refused(match: str, **overrides) -> str:
    with pytest.raises(ConfigError, match=match) as err:
        resolved(**overrides)
    return str(err.value)


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder\n")
    return path


# -- data.dir ----------------------------------------------------------------------------------
def test_data_dir_that_is_a_file_is_refused(a_file):
    refused(rf"data\.dir='{a_file}' is a file, not a folder", data={"dir": str(a_file)})


def test_data_dir_under_a_file_is_refused(a_file):
    message = refused(r"data\.dir=.*lies under", data={"dir": str(a_file / "data")})
    assert f"{a_file}, which is a file" in message


def test_data_dir_not_there_yet_is_fine_and_not_created(tmp_path):
    assert resolved(data={"dir": str(tmp_path / "new" / "data")})["data"]["dir"]
    assert not (tmp_path / "new").exists()


def test_data_dir_with_a_brace_is_refused(tmp_path):
    refused(r"data\.dir=.*brace.*wildcard", data={"dir": str(tmp_path / "d{x}")})


# -- data.text_base ----------------------------------------------------------------------------
def test_text_base_folder_that_does_not_exist_is_refused(tmp_path):
    message = refused(
        r"data\.text_base=.* is neither a URL .* nor an existing folder",
        data={"text_base": str(tmp_path / "mirror")},
    )
    assert "no existing folder" in message


def test_text_base_that_is_a_file_is_refused(a_file):
    refused(r"data\.text_base=.*it is a file", data={"text_base": str(a_file)})


def test_text_base_url_of_an_unfetched_scheme_is_refused():
    refused(
        r"data\.text_base='ftp://mirror.example'.*'ftp'", data={"text_base": "ftp://mirror.example"}
    )


@pytest.mark.parametrize("base", ["https://raw.githubusercontent.com", "file:///srv/mirror"])
def test_text_base_urls_pass_unchecked(base):
    # a URL is not fetched here: whether it answers is the data rule's (offline clusters stage)
    assert resolved(data={"text_base": base})["data"]["text_base"] == base


def test_text_base_relative_folder_is_read_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolved(data={"text_base": "mirror"})["data"]["text_base"] == "mirror"
    monkeypatch.chdir(ROOT)
    refused(r"data\.text_base='mirror'.*read from", data={"text_base": "mirror"})


# -- data.archives -----------------------------------------------------------------------------
def test_archive_folder_that_does_not_exist_is_refused_with_its_index(tmp_path):
    message = refused(
        r"data\.archives\[1\]=.* does not exist",
        data={"archives": [str(tmp_path), str(tmp_path / "gone")]},
    )
    assert str(tmp_path / "gone") in message


def test_archive_that_is_a_file_is_refused(a_file):
    refused(r"data\.archives\[0\]=.* is a file, not a folder", data={"archives": [str(a_file)]})


def test_existing_archive_folders_pass(tmp_path):
    assert resolved(data={"archives": [str(tmp_path)]})["data"]["archives"] == [str(tmp_path)]


# -- results -----------------------------------------------------------------------------------
def test_results_that_is_a_file_is_refused(a_file):
    refused(rf"results='{a_file}' is a file, not a folder", results=str(a_file))


def test_results_under_a_file_is_refused(a_file):
    refused(r"results=.*lies under .*a_file, which is a file", results=str(a_file / "results"))


def test_results_not_there_yet_is_fine_and_not_created(tmp_path):
    assert resolved(results=str(tmp_path / "new" / "results"))["results"]
    assert not (tmp_path / "new").exists()


def test_results_with_a_brace_is_refused(tmp_path):
    refused(r"results=.*brace.*wildcard", results=str(tmp_path / "r{seed}"))


def test_results_component_longer_than_the_file_system_allows_is_refused(tmp_path):
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    long = "r" * (name_max + 1)
    message = refused(r"^results=.*its component r+\.\.\. has \d+ characters", results=long)
    assert f"has {name_max + 1} characters, above the {name_max}" in message
    assert long not in message  # elided: the message stays readable
    assert resolved(results=str(tmp_path / ("r" * name_max)))["results"]


def just_fitting(tmp_path: Path, config: dict, spare: int) -> str:
    """A results folder under tmp_path whose longest output path has PC_PATH_MAX - 1 - spare
    characters (components within PC_NAME_MAX)."""
    path_max = os.pathconf(tmp_path, "PC_PATH_MAX")
    room = path_max - 1 - spare - (len(str(tmp_path)) + 1) - (1 + len(longest_output(config)))
    k = (room - 1) // 200  # components of 199 characters and their separators, then the rest
    out = f"{tmp_path}/" + ("r" * 199 + "/") * k + "r" * (room - 200 * k)
    assert len(out) + 1 + len(longest_output(config)) == path_max - 1 - spare
    return out


def test_results_path_longer_than_the_file_system_allows_is_refused(tmp_path):
    config = resolved()
    fits = just_fitting(tmp_path, config, spare=0)
    assert resolved(results=fits)["results"] == fits
    message = refused(
        r"^results=.*the longest path the pipeline writes under it", results=fits + "r"
    )
    assert "characters (absolute), above the" in message and "seed" in message


def test_longest_output_covers_every_run_and_file_name():
    """The bound holds the longest configuration, variant and seed of every family (listed in
    `families` or not), and room for every file name a run folder gets."""
    config = resolved(families=["synthetic"], seeds=[0, 4294967295], attentions=["qkv", "kv_pos"])
    longest = longest_output(config)
    assert "seed4294967295" in longest and "/kv_pos/" in longest
    for name, fam in FAMILIES.items():
        for task in config[name]["tasks"]:
            for cfg in fam.configs(config[name], task):
                assert len(longest) >= len(f"benchmarks/{name}/train/{task}/{cfg}/kv_pos/")
    names = ["model.pt", "last.pt", "run.json", "metrics.csv", "test.json"]
    names += [n for fam in FAMILIES.values() for n in fam.eval_files.values()]
    assert max(len(n) + len(".tmp") for n in names) < FILE_ROOM


@pytest.mark.slow
def test_too_long_results_stops_a_dry_run_naming_the_setting(tmp_path):
    """Before, a traceback (OSError: File name too long) while Snakemake built the workflow."""
    long = str(tmp_path / ("r" * (os.pathconf(tmp_path, "PC_NAME_MAX") + 1)))
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", f"results={long}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stderr + res.stdout
    assert res.returncode != 0
    assert "results=" in out and "above the" in out
    assert "Traceback" not in out and "OSError" not in out
