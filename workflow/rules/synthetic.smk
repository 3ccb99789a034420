# Synthetic sequence tasks: one train and one eval job per task x configuration x attention x seed
# (with `synthetic.joint_seeds`, one train and one eval job per task x configuration x attention
# serve every seed). Data are generated inside the job from the seed; tables and figures: aggregate.smk.


if FAM["synthetic"].section["joint_seeds"]:

    rule synthetic_train_seeds:
        output:
            model=FAM["synthetic"].seed_files("model.pt"),
            run=FAM["synthetic"].seed_files("run.json"),
            metrics=FAM["synthetic"].seed_files("metrics.csv"),
        log:
            f"{RESULTS}/logs/synthetic/train/{SEEDS_RUN}.log",
        benchmark:
            f"{RESULTS}/benchmarks/synthetic/train/{SEEDS_RUN}.tsv"
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
            hparams=FAM["synthetic"].seed_hparams,
            device=config["device"],
            precision=config["precision"],
            code=FAM["synthetic"].code,
        script:
            "../../scripts/train.py"

    rule synthetic_eval_seeds:
        input:
            model=FAM["synthetic"].seed_files("model.pt"),
        output:
            result=FAM["synthetic"].seed_files("test.json"),
        log:
            f"{RESULTS}/logs/synthetic/eval/{SEEDS_RUN}.log",
        benchmark:
            f"{RESULTS}/benchmarks/synthetic/eval/{SEEDS_RUN}.tsv"
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

else:

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
            precision=config["precision"],
            code=FAM["synthetic"].code,
        script:
            "../../scripts/train.py"

    rule synthetic_eval:
        input:
            model=f"{FAM['synthetic'].run}/model.pt",
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
            precision=config["precision"],
            code=FAM["synthetic"].code,
        script:
            "../../scripts/evaluate.py"
