# Gather the runs into results/summary.csv, then every report group's tables and figures (a group:
# one family, or several the paper shows together, e.g. NLP), from its recipe (kvt.families).
# They are light: on a cluster they run where Snakemake runs.


localrules:
    summary,
    tables,
    loss_figure,
    score_figure,
    paired,
    reproduction,


rule summary:
    input:
        runs=summary_runs,
        tests=summary_tests,
    output:
        csv=report(
            f"{RESULTS}/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        f"{RESULTS}/logs/summary.log",
    conda:
        "../../envs/kvt.yaml"
    params:
        code=REPORT_CODE,
    script:
        "../../scripts/summarize.py"


rule tables:
    input:
        checked_table,  # no files: the group checked before any job
        summary=rules.summary.output.csv,
    output:
        csv=f"{RESULTS}/tables/{{group}}.csv",
        md=report(
            f"{RESULTS}/tables/{{group}}.md",
            caption="../report/table.rst",
            category="{group}",
            labels={"table": "main table"},
        ),
        tex=f"{RESULTS}/tables/{{group}}.tex",
        by_config_csv=f"{RESULTS}/tables/{{group}}_by_config.csv",
        by_config_md=report(
            f"{RESULTS}/tables/{{group}}_by_config.md",
            caption="../report/by_config.rst",
            category="{group}",
            labels={"table": "per configuration"},
        ),
        params_csv=f"{RESULTS}/tables/params_{{group}}.csv",
        params_md=report(
            f"{RESULTS}/tables/params_{{group}}.md",
            caption="../report/params.rst",
            category="{group}",
            labels={"table": "parameters"},
        ),
    log:
        f"{RESULTS}/logs/tables/{{group}}.log",
    wildcard_constraints:
        group="|".join(GROUPS),
    conda:
        "../../envs/kvt.yaml"
    params:
        group="{group}",
        code=REPORT_CODE,
    script:
        "../../scripts/tables.py"


rule paired:
    input:
        summary=rules.summary.output.csv,
    output:
        csv=f"{RESULTS}/tables/paired.csv",
        md=report(
            f"{RESULTS}/tables/paired.md",
            caption="../report/paired.rst",
            category="Comparisons",
            labels={"table": "paired differences"},
        ),
        png=report(
            f"{RESULTS}/figures/paired.png",
            caption="../report/paired_figure.rst",
            category="Comparisons",
            labels={"figure": "differences to qkv"},
        ),
        pdf=f"{RESULTS}/figures/paired.pdf",
    log:
        f"{RESULTS}/logs/tables/paired.log",
    conda:
        "../../envs/kvt.yaml"
    params:
        seed=0,
        code=REPORT_CODE,
    script:
        "../../scripts/paired.py"


rule reproduction:
    input:
        summary=rules.summary.output.csv,
    output:
        csv=f"{RESULTS}/tables/reproduction.csv",
        md=report(
            f"{RESULTS}/tables/reproduction.md",
            caption="../report/reproduction.rst",
            category="Comparisons",
            labels={"table": "paper vs reproduction"},
        ),
    log:
        f"{RESULTS}/logs/tables/reproduction.log",
    conda:
        "../../envs/kvt.yaml"
    params:
        code=REPORT_CODE,
    script:
        "../../scripts/reproduction.py"


rule cost:
    input:
        summary=rules.summary.output.csv,
    output:
        csv=f"{RESULTS}/tables/cost.csv",
        md=report(
            f"{RESULTS}/tables/cost.md",
            caption="../report/cost.rst",
            category="Comparisons",
            labels={"table": "cost per variant"},
        ),
    log:
        f"{RESULTS}/logs/tables/cost.log",
    conda:
        "../../envs/kvt.yaml"
    params:
        code=REPORT_CODE,
    script:
        "../../scripts/cost.py"


rule loss_figure:
    input:
        summary=rules.summary.output.csv,
        runs=runs_of,
    output:
        png=report(
            f"{RESULTS}/figures/{{group}}/loss_{{task}}.png",
            caption="../report/loss.rst",
            category="{group}",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "loss vs time"},
        ),
        pdf=f"{RESULTS}/figures/{{group}}/loss_{{task}}.pdf",
    log:
        f"{RESULTS}/logs/figures/{{group}}_loss_{{task}}.log",
    wildcard_constraints:
        group="|".join(GROUPS),
    conda:
        "../../envs/kvt.yaml"
    params:
        group="{group}",
        task="{task}",
        kind="loss",
        code=REPORT_CODE,
    script:
        "../../scripts/figures.py"


rule score_figure:
    input:
        summary=rules.summary.output.csv,
        runs=runs_of,
    output:
        png=report(
            f"{RESULTS}/figures/{{group}}/{{score}}_{{task}}.png",
            caption="../report/score.rst",
            category="{group}",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "{score}"},
        ),
        pdf=f"{RESULTS}/figures/{{group}}/{{score}}_{{task}}.pdf",
    log:
        f"{RESULTS}/logs/figures/{{group}}_{{score}}_{{task}}.log",
    wildcard_constraints:
        group="|".join(GROUPS),
        score="|".join({g.table.score_figure for g in GROUPS.values()}),
    conda:
        "../../envs/kvt.yaml"
    params:
        group="{group}",
        task="{task}",
        kind="score",
        code=REPORT_CODE,
    script:
        "../../scripts/figures.py"
