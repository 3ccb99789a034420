"""The pipeline's configuration: presets, command-line overrides, schema validation, the grid.

Order of precedence: config.yaml < presets.<preset> < values given with `--config`. Snakemake
parses nested `--config` values with YAML's base loader, as strings; `coerce` turns them into the
types the schema asks for, so `--config synthetic="{epochs: 1}"` works as expected.
"""

import copy
import hashlib
import itertools
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """An invalid configuration; the message names the key and the problem."""


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
    kind = schema.get("type")
    if kind is None and "enum" in schema:
        return {type(v).__name__ for v in schema["enum"]}
    return set(kind) if isinstance(kind, list) else {kind}


def coerce(value, schema: dict):
    """Convert strings (as Snakemake's --config parser leaves them) to the schema's types."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: coerce(v, props.get(k, extra if isinstance(extra, dict) else {}))
                for k, v in value.items()}
    if isinstance(value, list):
        return [coerce(v, schema.get("items", {})) for v in value]
    if not isinstance(value, str):
        return value
    kinds = _types(schema)
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


def load_schema(path: Path) -> dict:
    """The JSON Schema, with the name enums taken from the registries (the one source of names)."""
    from .attention import ATTENTION
    from .data.synthetic import TASKS

    schema = yaml.safe_load(Path(path).read_text())
    props = schema["properties"]
    props["attentions"]["items"]["enum"] = list(ATTENTION)
    props["synthetic"]["properties"]["tasks"]["items"]["enum"] = list(TASKS)
    return schema


def resolve(config: dict, overrides: dict | None, schema: dict) -> dict:
    """The validated configuration: config (config.yaml, possibly already merged with the
    command-line values) overlaid with its preset, then with the command-line `overrides` again."""
    overrides = overrides or {}
    preset = overrides.get("preset", config.get("preset", "paper"))
    presets = config.get("presets", {})
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(presets) or '(none defined)'}")
    merged = deep_merge(deep_merge(config, presets[preset]), overrides)
    merged = fill_defaults(coerce(merged, schema), schema)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(merged), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {_where(e.path)}: {e.message}" for e in errors[:10]]
        raise ConfigError("invalid configuration (preset " + repr(preset) + "):\n" + "\n".join(lines))
    check_synthetic(merged["synthetic"])
    return merged


def check_synthetic(section: dict) -> None:
    """What the schema cannot say: combinations that cannot build a model or a batch."""
    grid = section["grid"]
    for d, h in itertools.product(grid["d_model"], grid["heads"]):
        if d % h:
            raise ConfigError(f"synthetic.grid: d_model={d} is not divisible by heads={h}")
    if "swap" in section["tasks"] and any(n % 2 for n in grid["seq_len"]):
        raise ConfigError("synthetic.grid.seq_len: swap needs even sequence lengths")
    if section["train_size"] < section["batch_size"]:
        raise ConfigError(f"synthetic.train_size={section['train_size']} is smaller than "
                          f"batch_size={section['batch_size']}: no training batch")


# -- the grid --------------------------------------------------------------------------------

SYNTHETIC_KEYS = ("seq_len", "d_model", "depth", "heads")
SYNTHETIC_TAGS = ("n", "d", "l", "h")


def synthetic_configs(section: dict) -> dict[str, dict]:
    """{configuration name: grid point}, e.g. 'n64-d256-l2-h4' -> {seq_len: 64, d_model: 256, ...}."""
    grid = section["grid"]
    out = {}
    for values in itertools.product(*(grid[k] for k in SYNTHETIC_KEYS)):
        name = "-".join(f"{t}{v}" for t, v in zip(SYNTHETIC_TAGS, values))
        out[name] = dict(zip(SYNTHETIC_KEYS, values))
    return out


SYNTHETIC_RUN_KEYS = ("train_size", "val_size", "test_size", "epochs", "batch_size", "lr",
                      "warmup_steps", "grad_clip", "dropout", "val_per_epoch", "select", "scale",
                      "pos_dim", "pos_per_head", "fused", "keep_last")


def synthetic_hparams(section: dict, task: str, cfg: str, attention: str, seed: int) -> dict:
    """Everything one synthetic run needs, as the train job receives it."""
    configs = synthetic_configs(section)
    if cfg not in configs:
        raise ConfigError(f"unknown synthetic configuration {cfg!r}; known: {', '.join(configs)}")
    return {"family": "synthetic", "task": task, "attention": attention, "seed": int(seed),
            "cfg": cfg, **configs[cfg], **{k: section[k] for k in SYNTHETIC_RUN_KEYS}}


def code_hash(root: Path, exclude: tuple[str, ...] = ()) -> str:
    """Content hash of the .py files under root (minus `exclude` subfolders): a Snakemake param,
    so editing the model code reruns the jobs it affects (Snakemake does not track imports)."""
    digest = hashlib.sha256()
    for path in sorted(Path(root).rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in exclude:
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
