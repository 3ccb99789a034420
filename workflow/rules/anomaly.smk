# Set anomaly detection on CIFAR-100: ResNet-34 features computed once (GPU when present) from the
# images of the vision data rule, the input of every train and eval job (runs.smk). Tables and
# the loss/accuracy figures: aggregate.smk.


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
