# The train and eval jobs of every family of the registry (kvt.families), from one template: one
# train and one eval job per task x configuration x attention x seed (with the section's
# `joint_seeds`, one of each per task x configuration x attention serves every seed: FAM's
# job_files and job_hparams; with its `group`, a configuration's jobs are one cluster job). What
# differs per family comes from its declaration: the named inputs of its jobs (data manifests,
# features, tokenizers) and the files its eval job writes besides test.json. A family's own
# rules (data, features, figures) are in rules/<family>.smk; tables and figures: aggregate.smk.

for fam in FAM.values():

    rule:
        name:
            f"{fam.name}_train"
        input:
            fam.checked_run,  # no files: the target's wildcards checked before any job
            **fam.inputs,
        output:
            model=fam.job_files("model.pt"),
            run=fam.job_files("run.json"),
            metrics=fam.job_files("metrics.csv"),
        log:
            f"{RESULTS}/logs/{fam.name}/train/{fam.job_run}.log",
        benchmark:
            f"{RESULTS}/benchmarks/{fam.name}/train/{fam.job_run}.tsv"
        wildcard_constraints:
            **fam.constraints,
        group:
            fam.group
        conda:
            "../../envs/kvt.yaml"
        threads: config["threads"]
        resources:
            gpu=1,
            runtime=fam.runtime,
            mem_mb=fam.mem_mb,
        params:
            hparams=fam.job_hparams,
            device=config["device"],
            precision=config["precision"],
            code=fam.code,
        script:
            "../../scripts/train.py"

    rule:
        name:
            f"{fam.name}_eval"
        input:
            fam.checked_run,
            **fam.inputs,
            model=fam.job_files("model.pt"),
        output:
            **fam.eval_outputs,
            result=fam.job_files("test.json"),
        log:
            f"{RESULTS}/logs/{fam.name}/eval/{fam.job_run}.log",
        benchmark:
            f"{RESULTS}/benchmarks/{fam.name}/eval/{fam.job_run}.tsv"
        wildcard_constraints:
            **fam.constraints,
        group:
            fam.group
        conda:
            "../../envs/kvt.yaml"
        threads: config["threads"]
        resources:
            gpu=1,
            runtime=fam.eval_runtime,
            mem_mb=fam.mem_mb,
        params:
            hparams=fam.job_hparams,
            device=config["device"],
            precision=config["precision"],
            code=fam.code,
        script:
            "../../scripts/evaluate.py"
