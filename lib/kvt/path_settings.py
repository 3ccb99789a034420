"""The configuration's paths, checked before any job (kvt.config.resolve calls check_paths): a
path that cannot work stops the run at once with the setting named, rather than a data rule's
error or a traceback while Snakemake builds the workflow.

Relative paths are relative to the working directory (the repository root for Snakemake).
Folders that do not exist yet are fine: the pipeline creates them. Torch-free.
"""

import os
from pathlib import Path

from .data.acquire import is_url
from .families import FAMILIES, ConfigError
from .families.base import JOINT_NAME

# The URL schemes kvt.data.acquire fetches text files from (data.text_base).
URL_SCHEMES = ("http", "https", "file")

# Room for a file name in a run folder, beside a run's log or a task's figure: more than every
# name the pipeline writes there (model.pt, metrics.csv.tmp, a family's eval output such as
# translations.txt.tmp, cross_attention_<task>.pdf; tests check the families' names against it).
FILE_ROOM = 64

# Where the pipeline writes under `results` (runs.smk, common.smk): the longest prefix of a run's
# files (its benchmark folder; its log folder and the run folder itself are shorter), and that of
# a task's files (a figure's log: logs/figures/<rule>_<task>.log; FILE_ROOM holds <rule>_).
RUN_PREFIX = "benchmarks/{family}/train/{task}/{cfg}/{attention}/{leaf}/"
TASK_PREFIX = "logs/figures/{task}"

# Snakemake reads braces in an output path or a string param as a wildcard.
BRACES = "{}"


def check_paths(config: dict) -> None:
    """Raise ConfigError naming the first path setting of a validated configuration that cannot
    work: data.dir, data.text_base, data.archives, results."""
    data = config["data"]
    for key, value in (("data.dir", data["dir"]), ("data.text_base", data["text_base"])):
        _no_braces(key, value)
    _folder_or_absent("data.dir", data["dir"], "the data rules write the datasets into it")
    _text_base(data["text_base"])
    for i, folder in enumerate(data["archives"]):
        _existing_folder(f"data.archives[{i}]", folder)
    _no_braces("results", config["results"])
    _fits("results", config["results"], longest_output(config))
    _folder_or_absent("results", config["results"], "every output is written under it")


def _no_braces(key: str, value: str) -> None:
    if any(c in value for c in BRACES):
        raise ConfigError(
            f"{key}={value!r} holds a brace: Snakemake would read it as a wildcard; rename the "
            "folder"
        )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name too long for the file system: reported by _fits
        return False


def _nearest_existing(path: Path) -> Path:
    """path, or the nearest of its parents that exists (the file system's root at worst)."""
    path = Path(os.path.abspath(path))
    while not _exists(path) and path != path.parent:
        path = path.parent
    return path


def _shown(value: str, most: int = 80) -> str:
    """value quoted, its middle elided where long (a path the file system refuses may be)."""
    if len(value) <= most:
        return repr(value)
    return repr(f"{value[: most // 2]}...{value[-most // 2 :]}") + f" ({len(value)} characters)"


def _folder_or_absent(key: str, value: str, why: str) -> None:
    """value is a folder, or not there yet and creatable (its nearest existing parent a folder)."""
    found = _nearest_existing(Path(value))
    if not found.is_dir():
        where = "is" if found == Path(os.path.abspath(value)) else f"lies under {found}, which is"
        raise ConfigError(f"{key}={_shown(value)} {where} a file, not a folder: {why}")


def _existing_folder(key: str, value: str) -> None:
    path = Path(value)
    if not path.exists():
        raise ConfigError(
            f"{key}={value!r} does not exist (relative paths are read from {Path.cwd()}): list "
            "an existing folder holding the archives"
        )
    if not path.is_dir():
        raise ConfigError(
            f"{key}={value!r} is a file, not a folder: list the folder that holds the archives"
        )


def _text_base(value: str) -> None:
    """A URL of a scheme kvt.data.acquire fetches, or an existing local folder."""
    key = "data.text_base"
    if is_url(value):
        scheme = value.split("://", 1)[0].lower()
        if scheme not in URL_SCHEMES:
            raise ConfigError(
                f"{key}={value!r}: a URL of scheme {scheme!r}; the text data rules fetch only "
                f"{', '.join(s + '://' for s in URL_SCHEMES)} URLs or read a local folder"
            )
        return
    if not Path(value).is_dir():
        what = "a file" if Path(value).exists() else "no existing folder"
        raise ConfigError(
            f"{key}={value!r} is neither a URL (such as https://raw.githubusercontent.com) nor an "
            f"existing folder (it is {what}; relative paths are read from {Path.cwd()}): the "
            "text data rules fetch missing files from it"
        )


def longest_output(config: dict) -> str:
    """A path relative to `results` at least as long as any the pipeline writes there, and holding
    its longest run-name components: a run's benchmark folder (the longest prefix of a run's files,
    for every family's runs: each can be reached by its path, listed in `families` or not) or a
    task's figure log, plus FILE_ROOM characters for the file's name."""
    prefixes = []
    for name, fam in FAMILIES.items():
        section = config[name]
        seeds = fam.seeds(section, config["seeds"])
        leaves = [f"seed{s}" for s in seeds] + [JOINT_NAME]
        for task, cfg, attention, _ in fam.runs(section, config["attentions"], seeds[:1]):
            prefixes += [
                RUN_PREFIX.format(family=name, task=task, cfg=cfg, attention=attention, leaf=leaf)
                for leaf in leaves
            ]
        prefixes += [TASK_PREFIX.format(task=task) for task in section["tasks"]]
    return max(prefixes, key=len) + "x" * FILE_ROOM


def _fits(key: str, value: str, below: str) -> None:
    """value/below within the file system's limits: each component within PC_NAME_MAX, the whole
    (made absolute: a safe bound, whatever the working directory) within PC_PATH_MAX, as the file
    system of value's nearest existing folder reports them."""
    found = _nearest_existing(Path(value))
    name_max = os.pathconf(found, "PC_NAME_MAX")
    path_max = os.pathconf(found, "PC_PATH_MAX")
    full = Path(os.path.abspath(value)) / below
    for part in full.parts:
        if len(part) > name_max:
            inside = part in Path(os.path.abspath(value)).parts
            raise ConfigError(
                f"{key}={_shown(value)}: "
                + (
                    f"its component {part[:40]}... has {len(part)} characters"
                    if inside
                    else f"a folder it would hold, {part[:40]}..., has {len(part)} characters"
                )
                + f", above the {name_max} this file system allows in one name"
            )
    if len(str(full)) >= path_max:
        raise ConfigError(
            f"{key}={_shown(value)}: the longest path the pipeline writes under it would have "
            f"about {len(str(full))} characters (absolute), above the {path_max - 1} this file system "
            f"allows; choose a shorter folder (its longest: {below[:-FILE_ROOM]}<file name>)"
        )
