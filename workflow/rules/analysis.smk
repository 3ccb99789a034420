# What the variants learn (docs/analysis.md): the attention analyses over every family's runs,
# from the files their eval jobs write, and one attention gallery per family. Light: on a
# cluster they run where Snakemake runs.


localrules:
    attention_analysis,


# The diagonal mass per layer and variant, and kv_pos's term decomposed (kvt.report.attention_terms)
rule attention_analysis:
    input:
        probes=attention_probes,
    output:
        **analysis_outputs(ATTENTION_ANALYSIS),
    log:
        f"{RESULTS}/logs/tables/attention_analysis.log",
    conda:
        "../../envs/kvt.yaml"
    params:
        attentions=ATTENTIONS,
        code=REPORT_CODE,
    script:
        "../../scripts/attention_analysis.py"
