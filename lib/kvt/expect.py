"""What the workflow must schedule and write for a configuration, from the registry alone: the
train and eval job count of every active family, and (--outputs) the files a complete run leaves
under results/. CI compares a dry run and a smoke run against these (.ci/run), so a new family is
checked without editing CI. Torch-free.

    python -m kvt.expect [KEY=VALUE ...]             # "<rule> <count>" per line
    python -m kvt.expect preset=smoke --outputs      # one path (under results/) a line
"""

import sys

from .config import ConfigError, load_config, parse_overrides
from .families import FAMILIES
from .report.analysis_files import ATTENTION_ANALYSIS


def job_counts(config: dict) -> dict[str, int]:
    """{<family>_train: jobs, <family>_eval: jobs} of every active family (a joint_seeds job
    serves every seed of a run)."""
    out = {}
    for name in config["families"]:
        fam, section = FAMILIES[name], config[name]
        seeds = fam.seeds(section, config["seeds"])
        runs = len(fam.runs(section, config["attentions"], config["seeds"]))
        jobs = runs // len(seeds) if section.get("joint_seeds") else runs
        out[f"{name}_train"] = out[f"{name}_eval"] = jobs
    return out


def outputs(config: dict) -> list[str]:
    """Files under results/ a complete run writes: the summary, comparisons and attention analyses,
    then per active family its report group's tables and per-task figures, its recipe's extra
    outputs, its jobs' shared inputs (features, tokenizers), the eval job's files of its first
    run of each task (the attention probe's included) and the attention gallery of its first
    task."""
    out = ["summary.csv", "tables/paired.md", "tables/reproduction.md", "tables/cost.md"]
    out += list(ATTENTION_ANALYSIS.values())
    for name in config["families"]:
        fam, section = FAMILIES[name], config[name]
        group, recipe = fam.report_group, fam.table
        out += [f"tables/{group}.{ext}" for ext in ("csv", "md", "tex")]
        seeds = fam.seeds(section, config["seeds"])
        out.append(f"figures/{group}/gallery_{section['tasks'][0]}.png")
        for task in section["tasks"]:
            out += [f"figures/{group}/{kind}_{task}.png" for kind in ("loss", recipe.score_figure)]
            out += [p.format(task=task) for p in recipe.extras]
            out += list(recipe.task_extras.get(task, ()))
            out += [p.format(task=task) for p in fam.inputs.values()]
            cfg = next(iter(fam.configs(section, task)))
            run = f"{name}/{task}/{cfg}/{config['attentions'][0]}/seed{seeds[0]}"
            out += [f"{run}/{f}" for f in ("run.json", "test.json", *fam.eval_files.values())]
    return list(dict.fromkeys(out))


def main(argv=None) -> None:
    args = sys.argv[1:] if argv is None else argv
    want_outputs = "--outputs" in args
    try:
        config = load_config(parse_overrides([a for a in args if a != "--outputs"]))
    except ConfigError as err:
        sys.exit(f"python -m kvt.expect [KEY=VALUE ...] [--outputs]: {err}")
    if want_outputs:
        print("\n".join(outputs(config)))
    else:
        print("\n".join(f"{rule} {n}" for rule, n in job_counts(config).items()))


if __name__ == "__main__":
    main()
