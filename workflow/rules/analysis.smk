# What the variants learn (docs/analysis.md): the attention analyses over every family's runs,
# from the files their eval jobs write, and one attention gallery per family. Light: on a
# cluster they run where Snakemake runs.


localrules:
    attention_gallery,


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
