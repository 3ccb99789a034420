# Set anomaly detection on CIFAR-100: ResNet-34 features computed once (GPU when present) from the
# images of the vision data rule, then one train and one eval job per configuration x attention x
# seed. Tables and the loss/accuracy figures: aggregate.smk.


rule anomaly_features:
    input:
        data=f"{RESULTS}/data/{{task}}.json",
    output:
        features=f"{RESULTS}/anomaly/features/{{task}}.pt",
    log:
        f"{RESULTS}/logs/anomaly/features_{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/anomaly/features_{{task}}.tsv"
    wildcard_constraints:
        task=FAM["anomaly"].constraints["task"],
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=60,
        mem_mb=16000,
    params:
        backbone=config["anomaly"]["backbone"],
        image_size=config["anomaly"]["image_size"],
        feature_batch=config["anomaly"]["feature_batch"],
        train_images=config["anomaly"]["train_images"],
        test_images=config["anomaly"]["test_images"],
        split_seed=config["anomaly"]["split_seed"],
        device=config["device"],
        code=FAM["anomaly"].code,
    script:
        "../../scripts/anomaly_features.py"


rule anomaly_train:
    input:
        features=rules.anomaly_features.output.features,
    output:
        model=f"{FAM['anomaly'].run}/model.pt",
        run=f"{FAM['anomaly'].run}/run.json",
        metrics=f"{FAM['anomaly'].run}/metrics.csv",
    log:
        f"{RESULTS}/logs/anomaly/train/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/anomaly/train/{RUN}.tsv"
    wildcard_constraints:
        **FAM["anomaly"].constraints,
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=FAM["anomaly"].runtime,
        mem_mb=FAM["anomaly"].mem_mb,
    params:
        hparams=FAM["anomaly"].hparams,
        device=config["device"],
        precision=config["precision"],
        code=FAM["anomaly"].code,
    script:
        "../../scripts/train.py"


rule anomaly_eval:
    input:
        model=rules.anomaly_train.output.model,
        features=rules.anomaly_features.output.features,
    output:
        result=f"{FAM['anomaly'].run}/test.json",
    log:
        f"{RESULTS}/logs/anomaly/eval/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/anomaly/eval/{RUN}.tsv"
    wildcard_constraints:
        **FAM["anomaly"].constraints,
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=20,
        mem_mb=FAM["anomaly"].mem_mb,
    params:
        device=config["device"],
        precision=config["precision"],
        code=FAM["anomaly"].code,
    script:
        "../../scripts/evaluate.py"
