# Vision (ViT): the data rule (files staged, downloaded or, for the smoke preset, fixtures), one
# train and one eval job per dataset x configuration x attention x seed, and the attention maps.
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


rule vision_train:
    input:
        data=f"{RESULTS}/data/{{task}}.json",
    output:
        model=f"{FAM['vision'].run}/model.pt",
        run=f"{FAM['vision'].run}/run.json",
        metrics=f"{FAM['vision'].run}/metrics.csv",
    log:
        f"{RESULTS}/logs/vision/train/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/vision/train/{RUN}.tsv"
    wildcard_constraints:
        **FAM["vision"].constraints,
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=FAM["vision"].runtime,
        mem_mb=FAM["vision"].mem_mb,
    params:
        hparams=FAM["vision"].hparams,
        device=config["device"],
        precision=config["precision"],
        code=FAM["vision"].code,
    script:
        "../../scripts/train.py"


rule vision_eval:
    input:
        model=rules.vision_train.output.model,
        data=f"{RESULTS}/data/{{task}}.json",
    output:
        result=f"{FAM['vision'].run}/test.json",
    log:
        f"{RESULTS}/logs/vision/eval/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/vision/eval/{RUN}.tsv"
    wildcard_constraints:
        **FAM["vision"].constraints,
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=20,
        mem_mb=FAM["vision"].mem_mb,
    params:
        device=config["device"],
        precision=config["precision"],
        code=FAM["vision"].code,
    script:
        "../../scripts/evaluate.py"


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
        device="cpu",
        code=FAM["vision"].code,
    script:
        "../../scripts/vision_attention.py"
