# What the variants learn (docs/analysis.md): the attention analyses over every family's runs,
# from the files their eval jobs write, and one attention gallery per family. Light: on a
# cluster they run where Snakemake runs.


localrules:
    attention_analysis,
    attention_gallery,


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


# One task's attention gallery: every variant's maps on its first test example (any family).
rule attention_gallery:
    input:
        unpack(gallery_inputs),  # models, and the files the family's eval job reads
    output:
        png=report(
            f"{RESULTS}/figures/{{group}}/gallery_{{task}}.png",
            caption="../report/gallery.rst",
            category="{group}",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "attention gallery"},
        ),
        pdf=f"{RESULTS}/figures/{{group}}/gallery_{{task}}.pdf",
    log:
        f"{RESULTS}/logs/figures/{{group}}_gallery_{{task}}.log",
    wildcard_constraints:
        group="|".join(GROUPS),
    conda:
        "../../envs/kvt.yaml"
    params:
        hparams=gallery_hparams,  # each model.pt must be its run's
        device="cpu",
        code=gallery_code,
    script:
        "../../scripts/attention_gallery.py"
