# Character-level language model on Tiny Shakespeare: the data rule (staged, fetched from
# data.text_base, or fixtures; every file checked against its recorded sha256). Train and eval
# jobs: runs.smk; tables and the loss/score figures: aggregate.smk (the report's NLP group).
from kvt.families.charlm import TASKS as CHARLM_DATASETS


# Downloads run where Snakemake runs: cluster nodes often have no network.
localrules:
    charlm_data,


rule charlm_data:
    output:
        manifest=f"{RESULTS}/data/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/data/{{dataset}}.log",
    wildcard_constraints:
        dataset="|".join(CHARLM_DATASETS),
    conda:
        "../../envs/kvt.yaml"
    params:
        root=config["data"]["dir"],
        base=config["data"]["text_base"],
        download=config["data"]["download"],
        fixtures=config["data"]["fixtures"],
        retries=config["data"]["retries"],
    script:
        "../../scripts/text_data.py"
