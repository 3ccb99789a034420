# Synthetic sequence tasks: one train and one eval job per task x configuration x attention x seed
# (with `synthetic.joint_seeds`, one of each per task x configuration x attention serves every
# seed: FAM's job_files and job_hparams). Data are generated inside the job from the seed; tables
# and figures: aggregate.smk.


rule synthetic_train:
    output:
        model=FAM["synthetic"].job_files("model.pt"),
        run=FAM["synthetic"].job_files("run.json"),
        metrics=FAM["synthetic"].job_files("metrics.csv"),
    log:
        f"{RESULTS}/logs/synthetic/train/{FAM['synthetic'].job_run}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic/train/{FAM['synthetic'].job_run}.tsv"
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
        hparams=FAM["synthetic"].job_hparams,
        device=config["device"],
        precision=config["precision"],
        code=FAM["synthetic"].code,
    script:
        "../../scripts/train.py"


rule synthetic_eval:
    input:
        model=FAM["synthetic"].job_files("model.pt"),
    output:
        result=FAM["synthetic"].job_files("test.json"),
    log:
        f"{RESULTS}/logs/synthetic/eval/{FAM['synthetic'].job_run}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic/eval/{FAM['synthetic'].job_run}.tsv"
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
        precision=config["precision"],
        code=FAM["synthetic"].code,
    script:
        "../../scripts/evaluate.py"
