# Vision (ViT): the data rule (files staged, downloaded or, for the smoke preset, fixtures) and
# the attention maps. Train and eval jobs: runs.smk (inputs: the declaration in kvt.families).
# Tables and the loss/accuracy figures: aggregate.smk.


# Downloads run where Snakemake runs: cluster nodes often have no network.
localrules:
    vision_data,


rule vision_data:
    output:
        manifest=f"{RESULTS}/data/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/data/{{dataset}}.log",
    wildcard_constraints:
        dataset="|".join(FAMILIES["vision"].tasks),
    conda:
        "../../envs/kvt.yaml"
    params:
        root=config["data"]["dir"],
        download=config["data"]["download"],
        fixtures=config["data"]["fixtures"],
        retries=config["data"]["retries"],
    script:
        "../../scripts/vision_data.py"


rule vision_attention:
    input:
        models=FAM["vision"].first_models,
        data=f"{RESULTS}/data/{{task}}.json",
    output:
        png=report(
            f"{RESULTS}/figures/vision/attention_{{task}}.png",
            caption="../report/attention.rst",
            category="vision",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "attention maps"},
        ),
        pdf=f"{RESULTS}/figures/vision/attention_{{task}}.pdf",
    log:
        f"{RESULTS}/logs/figures/vision_attention_{{task}}.log",
    wildcard_constraints:
        task=FAM["vision"].constraints["task"],
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    params:
        hparams=FAM["vision"].first_hparams,  # each model.pt must be its run's
        device="cpu",
        code=FAM["vision"].code,
    script:
        "../../scripts/vision_attention.py"
