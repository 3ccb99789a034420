# All the Python of the workflow: configuration, the grid, and the input/params functions.
# The rule files stay declarative.
from pathlib import Path

import kvt
from kvt.config import (
    ConfigError,
    code_hash,
    load_schema,
    resolve,
    synthetic_configs,
    synthetic_hparams,
)

# Snakemake has merged config.yaml (and any --configfile) with the --config values; apply the
# preset between the two: files < preset < --config.
_cli = dict(getattr(getattr(workflow, "config_settings", None), "config", None) or {})
try:
    _resolved = resolve(
        dict(config),
        _cli,
        load_schema(Path(workflow.basedir) / "schemas/config.schema.yaml"),
    )
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_resolved)

RESULTS = config["results"]
ATTENTIONS = config["attentions"]
SEEDS = config["seeds"]
SYN = config["synthetic"]
SYN_CONFIGS = synthetic_configs(SYN)
RUN = "{task}/{cfg}/{attention}/seed{seed}"

# Content hashes of the package, as params: editing the model code reruns train and eval jobs,
# editing the report code reruns only the tables and figures.
PACKAGE = Path(kvt.__file__).resolve().parent
MODEL_CODE = code_hash(PACKAGE, exclude=("report",))
REPORT_CODE = code_hash(PACKAGE / "report")


wildcard_constraints:
    task="|".join(SYN["tasks"]),
    attention="|".join(ATTENTIONS),
    cfg="|".join(SYN_CONFIGS),
    seed=r"\d+",


def synthetic_run_dirs():
    return expand(
        f"{RESULTS}/synthetic/{RUN}",
        task=SYN["tasks"],
        cfg=SYN_CONFIGS,
        attention=ATTENTIONS,
        seed=SEEDS,
    )


def synthetic_params(wildcards):
    return synthetic_hparams(
        SYN, wildcards.task, wildcards.cfg, wildcards.attention, wildcards.seed
    )


def synthetic_runs_of(wildcards):
    """run.json of every run of one task (the figures of that task)."""
    return expand(
        f"{RESULTS}/synthetic/{wildcards.task}/{{cfg}}/{{attention}}/seed{{seed}}/run.json",
        cfg=SYN_CONFIGS,
        attention=ATTENTIONS,
        seed=SEEDS,
    )


def all_targets():
    targets = [f"{RESULTS}/summary.csv"]
    if "synthetic" in config["families"]:
        targets += expand(
            f"{RESULTS}/tables/synthetic.{{ext}}", ext=["csv", "md", "tex"]
        )
        targets += expand(
            f"{RESULTS}/figures/synthetic/{{kind}}_{{task}}.{{ext}}",
            kind=["loss", "accuracy"],
            task=SYN["tasks"],
            ext=["png", "pdf"],
        )
    return targets
