# All the Python of the workflow: configuration, the grid of every family, input/params functions.
# The rule files stay declarative. Nothing here names a family; each one is declared in
# lib/kvt/families/, gets its train and eval rules from runs.smk and brings its own rule file
# (rules/<family>.smk: data, features, figures).
from pathlib import Path

import kvt
from kvt.codehash import files_hash, imported_files
from kvt.config import (
    NOT_RUN_CODE,
    ConfigError,
    code_hash,
    family_code_hashes,
    load_schema,
    resolve,
)
from kvt.families import FAMILIES, GROUPS
from kvt.families.base import ATTENTION_FILE, JOINT_NAME
from kvt.limits import check_prepared
from kvt.report.analysis_files import ATTENTION_ANALYSIS
from kvt.target_checks import (
    check_run,
    check_score,
    check_summary_target,
    family_of_task,
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
    check_prepared(_resolved)  # and against the files the data rules measured
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_resolved)

RESULTS = config["results"]
ATTENTIONS = config["attentions"]
SEEDS = config["seeds"]
RUN = "{task}/{cfg}/{attention}/seed{seed}"
# a joint_seeds job, which trains every seed of a run
SEEDS_RUN = f"{{task}}/{{cfg}}/{{attention}}/{JOINT_NAME}"

# Content hashes of the package, as params: editing a family's model code reruns that family's
# train and eval jobs (a shared module reruns every family's); editing the report code reruns
# only the tables and figures.
PACKAGE = Path(kvt.__file__).resolve().parent
CODE = family_code_hashes(PACKAGE)
REPORT_CODE = code_hash(PACKAGE / "report")
ALL_CODE = code_hash(PACKAGE)  # the benchmarks: any change of the package reruns them
# the attention galleries' own code (kvt.gallery and what it imports beside the report)
GALLERY_CODE = files_hash(
    PACKAGE, imported_files(PACKAGE, ["kvt.gallery"], skip=NOT_RUN_CODE)
)


class FamilyRules:
    """What the rules of one family need: its section, names, regexes and params functions."""

    def __init__(self, name):
        self.name, self.spec = name, FAMILIES[name]
        self.section = config[name]
        self.tasks = self.section["tasks"]
        self.seeds = self.spec.seeds(self.section, SEEDS)
        self.configs = {t: self.spec.configs(self.section, t) for t in self.tasks}
        self.code = CODE[name]
        self.root = f"{RESULTS}/{name}"
        self.run = f"{RESULTS}/{name}/{RUN}"
        # The section's `group` on: a cluster job per configuration, its runs the components of
        # this group (the profile's group-components names the pattern: it spans them all).
        self.group = f"{name}-{{task}}-{{cfg}}" if self.section.get("group") else None
        # The section's `joint_seeds` on: one train and one eval job serve every seed of a run.
        self.joint = bool(self.section.get("joint_seeds"))
        # the name of a train or eval job's log and benchmark files
        self.job_run = SEEDS_RUN if self.joint else RUN
        # the folder of the run (or, joint_seeds, the runs) one train or eval job serves
        self.job_dir = f"{self.root}/{self.job_run}"
        cfgs = sorted({c for per_task in self.configs.values() for c in per_task})
        # the named inputs of its train and eval jobs, and the files an eval job writes
        self.inputs = {k: f"{RESULTS}/{v}" for k, v in self.spec.inputs.items()}
        self.eval_outputs = {
            k: self.job_files(v) for k, v in self.spec.eval_files.items()
        }
        self.constraints = {
            "task": "|".join(self.tasks),
            "cfg": "|".join(cfgs),
            "attention": "|".join(ATTENTIONS),
            "seed": r"\d+",
        }

    def checked_run(self, wildcards):
        """No files: an input function of the train and eval rules, so that their wildcards are
        checked (kvt.target_checks) while Snakemake builds the DAG, before any job."""
        values = dict(wildcards.items())
        check_run(self.name, self.configs, values, self.job_dir.format(**values))
        return []

    def task_constraints(self, task):
        """The constraints of a rule that serves one task only (its own inputs and outputs)."""
        return {**self.constraints, "task": task}

    def run_dirs(self, task=None):
        return [
            f"{self.root}/{t}/{c}/{a}/seed{s}"
            for t, c, a, s in self.spec.runs(self.section, ATTENTIONS, self.seeds)
            if task is None or t == task
        ]

    def hparams(self, wildcards):
        return self.spec.hparams(
            self.section,
            wildcards.task,
            wildcards.cfg,
            wildcards.attention,
            wildcards.seed,
        )

    def job_files(self, name):
        """The file `name` of the runs one train or eval job serves: its run's, or with the
        section's `joint_seeds` every seed's (the other wildcards kept)."""
        if not self.joint:
            return f"{self.run}/{name}"
        return expand(f"{self.run}/{name}", seed=self.seeds, allow_missing=True)

    def job_hparams(self, wildcards):
        """The hparams a train job receives: its run's, or (joint_seeds) a list, one per seed."""
        if not self.joint:
            return self.hparams(wildcards)
        return [
            self.spec.hparams(
                self.section, wildcards.task, wildcards.cfg, wildcards.attention, seed
            )
            for seed in self.seeds
        ]

    def runtime(self, wildcards):
        """Minutes of one run; a joint_seeds job trains every seed, one after another on a CPU."""
        minutes = self.spec.resources(self.section, wildcards.task)["runtime"]
        return minutes * len(self.seeds) if self.joint else minutes

    def eval_runtime(self, wildcards):
        """Minutes of one eval job (the section's eval_runtime), per seed with joint_seeds."""
        minutes = self.section["eval_runtime"]
        return minutes * len(self.seeds) if self.joint else minutes

    def mem_mb(self, wildcards):
        return self.spec.resources(self.section, wildcards.task)["mem_mb"]

    def first_models(self, wildcards):
        """model.pt of every variant at the first configuration and seed of a task (figures that
        show one run per variant)."""
        cfg = next(iter(self.configs[wildcards.task]))
        return [
            f"{self.root}/{wildcards.task}/{cfg}/{a}/seed{self.seeds[0]}/model.pt"
            for a in ATTENTIONS
        ]

    def first_hparams(self, wildcards):
        """The hparams of first_models' runs, in their order: a figure job checks that each
        model.pt is its run's (kvt.runner.check_owner), as an eval job does."""
        cfg = next(iter(self.configs[wildcards.task]))
        return [
            self.spec.hparams(self.section, wildcards.task, cfg, a, self.seeds[0])
            for a in ATTENTIONS
        ]

    def task_runs(self, task):
        """run.json of every run of one task (figures of a task-specific rule)."""
        return [f"{d}/run.json" for d in self.run_dirs(task)]

    def summary_task_runs(self, task, path):
        """task_runs, for the figure at `path`, which also reads the summary: its wildcards
        checked first (summary_target)."""
        summary_target(self.spec.report_group, path, task)
        return self.task_runs(task)

    def outputs(self, name):
        """The file `name` (run.json, test.json) of every run: the summary's inputs."""
        return [f"{d}/{name}" for d in self.run_dirs()]


FAM = {name: FamilyRules(name) for name in FAMILIES}
ACTIVE = [FAM[name] for name in FAMILIES if name in config["families"]]


def summary_runs(wildcards=None):
    return [f for fam in ACTIVE for f in fam.outputs("run.json")]


def summary_tests(wildcards=None):
    return [f for fam in ACTIVE for f in fam.outputs("test.json")]


def attention_probes(wildcards=None):
    """The attention probe's file (kvt.probe) of every run of the active families."""
    return [f for fam in ACTIVE for f in fam.outputs(ATTENTION_FILE)]


def analysis_outputs(files):
    """{output name: path under results}, of an analysis's {name: path relative to results}."""
    return {name: f"{RESULTS}/{path}" for name, path in files.items()}


def all_targets():
    """summary.csv, the paired comparisons, the paper-vs-reproduction and cost tables, the attention
    analyses (diagonal mass, kv_pos's terms), then per active family its report group's tables,
    its figures per task, and the extra outputs its recipe names (e.g. attention maps).
    """
    targets = [
        f"{RESULTS}/summary.csv",
        f"{RESULTS}/tables/paired.md",
        f"{RESULTS}/tables/reproduction.md",
        f"{RESULTS}/tables/cost.md",
        *analysis_outputs(ATTENTION_ANALYSIS).values(),
    ]
    for fam in ACTIVE:
        recipe, group = fam.spec.table, fam.spec.report_group
        targets += expand(
            f"{RESULTS}/tables/{{name}}.{{ext}}",
            name=group,
            ext=["csv", "md", "tex"],
        )
        targets += expand(
            f"{RESULTS}/figures/{group}/{{kind}}_{{task}}.{{ext}}",
            kind=["loss", recipe.score_figure],
            task=fam.tasks,
            ext=["png", "pdf"],
        )
        targets += [
            f"{RESULTS}/{pattern.format(task=task)}"
            for pattern in recipe.extras
            for task in fam.tasks
        ]
        targets += [
            f"{RESULTS}/{pattern}"
            for task in fam.tasks
            for pattern in recipe.task_extras.get(task, ())
        ]
        targets += expand(
            gallery_path(group, fam.tasks[0]) + ".{ext}", ext=["png", "pdf"]
        )
    return list(dict.fromkeys(targets))  # a report group's tables: once


def summary_target(group, path, task=None):
    """Check a table's or figure's wildcards (kvt.target_checks): the summary it reads has runs
    of its group (and task) only for the families in `families`."""
    members = {name: FAM[name].tasks for name in GROUPS[group].members}
    check_summary_target(group, members, config["families"], path, task)


def checked_table(wildcards):
    """No files: an input function of the tables rule, so that its group is checked while
    Snakemake builds the DAG."""
    summary_target(wildcards.group, f"{RESULTS}/tables/{wildcards.group}.md")
    return []


def runs_of(wildcards):
    """run.json of every run of one task of one report group (the figures of that task): the runs
    of the group's family that has the task. Its wildcards checked first (a figure's score name
    too), while Snakemake builds the DAG."""
    group, score = wildcards.group, wildcards.get("score")
    path = f"{RESULTS}/figures/{group}/{score or 'loss'}_{wildcards.task}.png"
    summary_target(group, path, wildcards.task)
    if score is not None:
        check_score(group, score, GROUPS[group].table.score_figure, path)
    return [
        f"{d}/run.json"
        for name in GROUPS[wildcards.group].members
        if wildcards.task in FAM[name].tasks
        for d in FAM[name].run_dirs(wildcards.task)
    ]


# -- the attention galleries (rules/analysis.smk) ---------------------------------------------
def gallery_path(group, task):
    """The gallery of a task, without its suffix (png and pdf)."""
    return f"{RESULTS}/figures/{group}/gallery_{task}"


def gallery_family(wildcards):
    """The FamilyRules of the gallery's task: the member of its group that is listed in
    `families` and has the task (the wildcards checked while Snakemake builds the DAG).
    """
    group, task = wildcards.group, wildcards.task
    path = gallery_path(group, task) + ".png"
    members = {name: FAM[name].tasks for name in GROUPS[group].members}
    return FAM[family_of_task(group, members, config["families"], task, path)]


def gallery_inputs(wildcards):
    """The models of the first configuration and seed of every variant, and the files the
    family's eval job reads (data manifests, tokenizer)."""
    fam = gallery_family(wildcards)
    files = {k: v.format(task=wildcards.task) for k, v in fam.inputs.items()}
    return {"models": fam.first_models(wildcards), **files}


def gallery_hparams(wildcards):
    """first_models' hparams: the job checks that each model.pt is its run's."""
    return gallery_family(wildcards).first_hparams(wildcards)


def gallery_code(wildcards):
    """Editing the family's model code, the gallery's or the report's reruns the gallery."""
    return f"{gallery_family(wildcards).code}-{GALLERY_CODE}-{REPORT_CODE}"
