# Synthetic sequence tasks: one train and one eval job per task x configuration x attention x seed.
# Data are generated inside the job from the seed; tables and figures: aggregate.smk.


rule synthetic_train:
    output:
        model=f"{FAM['synthetic'].run}/model.pt",
        run=f"{FAM['synthetic'].run}/run.json",
        metrics=f"{FAM['synthetic'].run}/metrics.csv",
    log:
        f"{RESULTS}/logs/synthetic/train/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic/train/{RUN}.tsv"
    wildcard_constraints:
        **FAM["synthetic"].constraints,
    group:
        FAM["synthetic"].group
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=FAM["synthetic"].runtime,
        mem_mb=FAM["synthetic"].mem_mb,
    params:
        hparams=FAM["synthetic"].hparams,
        device=config["device"],
        code=FAM["synthetic"].code,
    script:
        "../../scripts/train.py"


rule synthetic_eval:
    input:
        model=rules.synthetic_train.output.model,
    output:
        result=f"{FAM['synthetic'].run}/test.json",
    log:
        f"{RESULTS}/logs/synthetic/eval/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic/eval/{RUN}.tsv"
    wildcard_constraints:
        **FAM["synthetic"].constraints,
    group:
        FAM["synthetic"].group
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=10,
        mem_mb=FAM["synthetic"].mem_mb,
    params:
        device=config["device"],
        code=FAM["synthetic"].code,
    script:
        "../../scripts/evaluate.py"
