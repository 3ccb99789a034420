# Synthetic sequence tasks: one train and one eval job per task x configuration x attention x seed.


rule synthetic_train:
    output:
        model=f"{RESULTS}/synthetic/{RUN}/model.pt",
        run=f"{RESULTS}/synthetic/{RUN}/run.json",
        metrics=f"{RESULTS}/synthetic/{RUN}/metrics.csv",
    log:
        f"{RESULTS}/logs/synthetic/train/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic/train/{RUN}.tsv"
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=SYN["runtime"],
        mem_mb=SYN["mem_mb"],
    params:
        hparams=synthetic_params,
        device=config["device"],
        code=MODEL_CODE,
    script:
        "../../scripts/train.py"


rule synthetic_eval:
    input:
        model=rules.synthetic_train.output.model,
    output:
        result=f"{RESULTS}/synthetic/{RUN}/test.json",
    log:
        f"{RESULTS}/logs/synthetic/eval/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/synthetic/eval/{RUN}.tsv"
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=10,
        mem_mb=SYN["mem_mb"],
    params:
        family="synthetic",
        device=config["device"],
        code=MODEL_CODE,
    script:
        "../../scripts/evaluate.py"
