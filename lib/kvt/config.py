"""The pipeline's configuration: presets, command-line overrides, schema validation.

Order of precedence: config.yaml < presets.<preset> < values given with `--config`. Snakemake
parses nested `--config` values with YAML's base loader, as strings; `coerce` turns them into the
types the schema asks for, so `--config synthetic="{epochs: 1}"` works as expected.

The schema file holds the top-level keys; each family's section comes from its declaration
(kvt.families), and the name lists (variants, families, tasks) from the registries. Torch-free:
the DAG is built without importing torch.

    python -m kvt.config [KEY=VALUE ...]   # the resolved configuration, e.g. preset=cpu
"""

import copy
import hashlib
import sys
from pathlib import Path

import jsonschema
import yaml

from .codehash import files_hash, imported_files
from .families import FAMILIES, ConfigError  # noqa: F401  (ConfigError is part of this API)
from .path_settings import check_paths

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
    for name, fam in FAMILIES.items():
        props[name] = fam.schema()
        schema.setdefault("required", []).append(name)
    return schema


def resolve(config: dict, overrides: dict | None, schema: dict) -> dict:
    """The validated configuration: config (config.yaml, possibly already merged with the
    command-line values) overlaid with its preset, then with the command-line `overrides` again."""
    overrides = overrides or {}
    preset = overrides.get("preset", config.get("preset", "paper"))
    presets = config.get("presets", {})
    if preset not in presets:
        raise ConfigError(
            f"unknown preset {preset!r}; choose one of {', '.join(presets) or '(none defined)'}"
        )
    merged = deep_merge(deep_merge(config, presets[preset]), overrides)
    for name in FAMILIES:
        if merged.get(name) is None:  # an empty section in config.yaml: all defaults
            merged[name] = {}
    merged = fill_defaults(coerce(merged, schema), schema)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(merged), key=lambda e: list(e.path)
    )
    if errors:
        lines = [f"  {_where(e.path)}: {e.message}" for e in errors[:10]]
        raise ConfigError(
            "invalid configuration (preset " + repr(preset) + "):\n" + "\n".join(lines)
        )
    for name in merged["families"]:  # the schema checks every section; these, what will run
        if FAMILIES[name].check is not None:
            FAMILIES[name].check(merged[name])
    check_paths(merged)  # data.dir, data.text_base, data.archives, results (kvt.path_settings)
    return merged


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
