# Gather the runs into results/summary.csv, then the paper's tables and figures. They are light:
# on a cluster they run where Snakemake runs, not through the scheduler.


localrules:
    summary,
    synthetic_tables,
    synthetic_figures,


rule summary:
    input:
        runs=expand("{run}/run.json", run=synthetic_run_dirs()),
        tests=expand("{run}/test.json", run=synthetic_run_dirs()),
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


rule synthetic_tables:
    input:
        summary=rules.summary.output.csv,
    output:
        csv=f"{RESULTS}/tables/synthetic.csv",
        md=report(
            f"{RESULTS}/tables/synthetic.md",
            caption="../report/synthetic_table.rst",
            category="Synthetic tasks",
            labels={"table": "paper table"},
        ),
        tex=f"{RESULTS}/tables/synthetic.tex",
        by_config_csv=f"{RESULTS}/tables/synthetic_by_config.csv",
        by_config_md=report(
            f"{RESULTS}/tables/synthetic_by_config.md",
            caption="../report/synthetic_by_config.rst",
            category="Synthetic tasks",
            labels={"table": "per configuration"},
        ),
        params_csv=f"{RESULTS}/tables/params_synthetic.csv",
        params_md=report(
            f"{RESULTS}/tables/params_synthetic.md",
            caption="../report/params.rst",
            category="Synthetic tasks",
            labels={"table": "parameters"},
        ),
    log:
        f"{RESULTS}/logs/tables/synthetic.log",
    conda:
        "../../envs/kvt.yaml"
    params:
        code=REPORT_CODE,
    script:
        "../../scripts/table_synthetic.py"


rule synthetic_figures:
    input:
        summary=rules.summary.output.csv,
        runs=synthetic_runs_of,
    output:
        loss_png=report(
            f"{RESULTS}/figures/synthetic/loss_{{task}}.png",
            caption="../report/loss.rst",
            category="Synthetic tasks",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "loss vs time"},
        ),
        loss_pdf=f"{RESULTS}/figures/synthetic/loss_{{task}}.pdf",
        acc_png=report(
            f"{RESULTS}/figures/synthetic/accuracy_{{task}}.png",
            caption="../report/accuracy.rst",
            category="Synthetic tasks",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "test accuracy"},
        ),
        acc_pdf=f"{RESULTS}/figures/synthetic/accuracy_{{task}}.pdf",
    log:
        f"{RESULTS}/logs/figures/synthetic_{{task}}.log",
    conda:
        "../../envs/kvt.yaml"
    params:
        task="{task}",
        code=REPORT_CODE,
    script:
        "../../scripts/figures_synthetic.py"
