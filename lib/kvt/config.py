"""The pipeline's configuration: presets, command-line overrides, schema validation.

Order of precedence: config.yaml < presets.<preset> < values given with `--config`. A list of
presets overlays them in its order: `preset=[cpu, extended]` is the extended preset's variants,
seeds and configurations at the cpu preset's scale. Snakemake
parses nested `--config` values with YAML's base loader, as strings; `coerce` turns them into the
types the schema asks for, so `--config synthetic="{epochs: 1}"` works as expected.

The schema file holds the top-level keys; each family's section comes from its declaration
(kvt.families), and the name lists (variants, families, tasks) from the registries. Torch-free:
the DAG is built without importing torch.

    python -m kvt.config [KEY=VALUE ...]   # the resolved configuration, e.g. preset=cpu
"""

import copy
import hashlib
import math
import sys
from pathlib import Path

import jsonschema
import yaml

from .codehash import files_hash, imported_files
from .families import FAMILIES, ConfigError  # noqa: F401  (ConfigError is part of this API)
from .limits import check_limits
from .path_settings import check_paths
from .seeds import SEED_MAX

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def deep_merge(base: dict, over: dict) -> dict:
    """base updated by over, recursively for dicts; lists and scalars replace."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _types(schema: dict) -> set:
    if "anyOf" in schema:
        return set().union(*(_types(s) for s in schema["anyOf"]))
    kind = schema.get("type")
    if kind is None and "enum" in schema:
        return {type(v).__name__ for v in schema["enum"]}
    return set(kind) if isinstance(kind, list) else {kind}


def _branch(value, schema: dict) -> dict:
    """The anyOf branch of `schema` for a list or dict value (e.g. a list or null)."""
    kind = "array" if isinstance(value, list) else "object"
    return next((s for s in schema.get("anyOf", ()) if s.get("type") == kind), schema)


def coerce(value, schema: dict):
    """Convert strings (as Snakemake's --config parser leaves them) to the schema's types."""
    if isinstance(value, (dict, list)):
        schema = _branch(value, schema)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            k: coerce(v, props.get(k, extra if isinstance(extra, dict) else {}))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [coerce(v, schema.get("items", {})) for v in value]
    if not isinstance(value, str):
        return value
    kinds = _types(schema)
    if "null" in kinds and value.lower() in ("null", "none", "~"):
        return None
    try:
        if "integer" in kinds or "int" in kinds:
            return int(value)
        if "number" in kinds:
            return float(value)
    except ValueError:
        return value  # validation then reports the wrong type with its key
    if "boolean" in kinds and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def fill_defaults(instance: dict, schema: dict) -> dict:
    """Add the schema's defaults for missing object properties, recursively."""
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict):
            fill_defaults(instance[key], sub)
    return instance


def non_finite(value, path=()) -> list[tuple]:
    """The key paths of every NaN or infinite number in `value` (nested dicts and lists): no
    setting means them, and they pass every bound (NaN compares false, inf passes minimum)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite(v, (*path, i))]
    return []


def _leaf(error):
    """The error inside an anyOf (e.g. a list or null) that says what is wrong with the value,
    rather than "is not valid under any of the given schemas"."""
    while error.context:  # a branch of another type (null) says least: its error is the last pick
        typed = [e for e in error.context if e.validator != "type"]
        error = jsonschema.exceptions.best_match(typed or error.context)
    return error


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_schema(path: Path = SCHEMA) -> dict:
    """The JSON Schema: the file's top level, every family's section from its declaration, the
    name enums from the registries (the one source of names)."""
    from .attention_names import attention_names

    schema = yaml.safe_load(Path(path).read_text())
    props = schema["properties"]
    props["attentions"]["items"]["enum"] = attention_names()
    props["families"]["items"]["enum"] = list(FAMILIES)
    props["families"]["default"] = list(FAMILIES)
    props["seeds"]["items"]["maximum"] = SEED_MAX
    for name, fam in FAMILIES.items():
        props[name] = fam.schema()
        schema.setdefault("required", []).append(name)
    return schema


def preset_names(preset) -> list[str]:
    """The presets a `preset` value names, in the order they overlay: one name or a list."""
    return [preset] if isinstance(preset, str) else list(preset)


def preset_label(preset) -> str:
    """`preset` as a --config value: cpu, or [cpu,extended] (no space: one shell word)."""
    return preset if isinstance(preset, str) else "[" + ",".join(preset) + "]"


def resolve(config: dict, overrides: dict | None, schema: dict) -> dict:
    """The validated configuration: config (config.yaml, possibly already merged with the
    command-line values) overlaid with its preset(s), then with the command-line `overrides`
    again."""
    overrides = overrides or {}
    preset = overrides.get("preset", config.get("preset", "paper"))
    presets = config.get("presets", {})
    if not isinstance(preset, (str, list)) or not preset:
        raise ConfigError(f"preset: {preset!r} is neither a preset's name nor a list of them")
    merged = config
    for name in preset_names(preset):
        if name not in presets:
            raise ConfigError(
                f"unknown preset {name!r}; choose one of {', '.join(presets) or '(none defined)'}"
                + ("" if isinstance(preset, str) else f" (preset={preset_label(preset)})")
            )
        merged = deep_merge(merged, presets[name])
    merged = deep_merge(merged, overrides)
    for name in FAMILIES:
        if merged.get(name) is None:  # an empty section in config.yaml: all defaults
            merged[name] = {}
    merged = fill_defaults(coerce(merged, schema), schema)
    bad = non_finite(merged)
    errors = sorted(
        (
            e
            for e in jsonschema.Draft202012Validator(schema).iter_errors(merged)
            if tuple(e.path) not in bad
        ),
        key=lambda e: list(e.path),
    )
    lines = [f"  {_where(p)}: {_get(merged, p)} is not a finite number" for p in bad]
    lines += [f"  {_where(e.absolute_path)}: {e.message}" for e in map(_leaf, errors)]
    if lines:
        raise ConfigError(
            "invalid configuration (preset " + repr(preset) + "):\n" + "\n".join(lines[:10])
        )
    if merged["configurations"] == "first":
        first_configurations(merged)
    # Every section, listed in `families` or not: its rules can still be reached by a path.
    for name, fam in FAMILIES.items():
        if fam.check is not None:
            fam.check(merged[name])
    check_limits(merged)  # every section's sizes against the datasets' facts (kvt.limits)
    check_paths(merged)  # data.dir, data.text_base, data.archives, results (kvt.path_settings)
    return merged


def first_configurations(config: dict) -> None:
    """Narrow every family's grid (each task's, per-task families) to its first configuration:
    each axis's first value (the first of itertools.product's order, Family.configs)."""
    for name, fam in FAMILIES.items():
        section = config[name]
        holders = [section[t] for t in fam.tasks] if fam.per_task else [section]
        for holder in holders:
            holder["grid"] = {axis: values[:1] for axis, values in holder["grid"].items()}


def _get(tree, path):
    for part in path:
        tree = tree[part]
    return tree


def load_config(overrides: dict | None = None, root: Path = Path(".")) -> dict:
    """The resolved configuration of root/config.yaml with command-line style `overrides`
    ({key: value}, e.g. {"preset": "cpu"}), as the workflow resolves it."""
    overrides = overrides or {}
    path = Path(root) / "config.yaml"
    if not path.exists():
        raise ConfigError(f"no {path}: run from the repository root")
    return resolve(
        deep_merge(yaml.safe_load(path.read_text()), overrides), overrides, load_schema()
    )


def parse_overrides(args, strict: bool = True) -> dict:
    """{key: value} of KEY=VALUE arguments (values read as YAML); strict: anything else is an
    error, else it is skipped (e.g. Snakemake's own options around them)."""
    out = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and not arg.startswith("-"):
            out[key] = yaml.safe_load(value)
        elif strict:
            raise ConfigError(f"expected KEY=VALUE, got {arg!r}")
    return out


def code_hash(root: Path, files=None, exclude: tuple[str, ...] = ()) -> str:
    """Content hash of the .py files under root (or of `files`, relative to root; minus `exclude`
    subfolders/files): a Snakemake param, so editing the model code reruns the jobs it affects
    (Snakemake does not track imports)."""
    root = Path(root)
    paths = sorted(root.rglob("*.py")) if files is None else sorted(root / f for f in files)
    digest = hashlib.sha256()
    for path in paths:
        rel = path.relative_to(root)
        if rel.parts[0] in exclude or str(rel) in exclude:
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


# Parts of kvt/ that no train or eval job's result depends on: the report (hashed on its own:
# editing it reruns tables and figures only) and the benchmarks. Their imports are not followed.
NOT_RUN_CODE = ("report", "bench")


def run_modules(fam) -> list[str]:
    """The entry points of a family's jobs: its declaration (the module of its config dataclass),
    its runtime module and the job functions the scripts call."""
    return [fam.config.__module__, fam.module, "kvt.jobs"]


def family_code_hashes(package: Path) -> dict[str, str]:
    """{family: hash of the package files its jobs can run} (kvt.codehash: its entry points and
    everything they import): editing a family's model, data loader or any module it imports
    reruns its jobs; editing another family's files, the report or the benchmarks does not."""
    return {
        name: files_hash(package, imported_files(package, run_modules(fam), skip=NOT_RUN_CODE))
        for name, fam in FAMILIES.items()
    }


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        resolved = load_config(parse_overrides(args))
    except ConfigError as err:
        sys.exit(f"python -m kvt.config [KEY=VALUE ...]: {err}")
    resolved.pop("presets", None)
    print(yaml.safe_dump(resolved, sort_keys=False))


if __name__ == "__main__":
    main()
