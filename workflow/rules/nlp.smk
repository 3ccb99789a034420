# NLP: the data rule (Tiny Shakespeare, Multi30k: staged, fetched from data.text_base, or fixtures;
# every file checked against its recorded sha256), the translation tokenizer, one train and one
# eval job per task x configuration x attention x seed (char-LM and translator train differently
# and leave different files), BLEU per epoch and the decoder's cross-attention. Both translation
# tasks (multi30k_en_de, multi30k_de_en) read the one Multi30k dataset and share one joint
# tokenizer. Tables and the loss/score figures: aggregate.smk.
from kvt.families.nlp import CORPUS, DATASETS, TRANSLATION, tokenizer_vocab

TRANSLATION_TASKS = "|".join(TRANSLATION)


# Downloads run where Snakemake runs: cluster nodes often have no network.
localrules:
    nlp_data,
    nlp_bleu_figure,


rule nlp_data:
    output:
        manifest=f"{RESULTS}/data/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/data/{{dataset}}.log",
    wildcard_constraints:
        dataset="|".join(DATASETS),
    conda:
        "../../envs/kvt.yaml"
    params:
        root=config["data"]["dir"],
        base=config["data"]["text_base"],
        download=config["data"]["download"],
        fixtures=config["data"]["fixtures"],
        retries=config["data"]["retries"],
    script:
        "../../scripts/nlp_data.py"


rule nlp_tokenizer:
    input:
        data=f"{RESULTS}/data/{CORPUS}.json",
    output:
        model=f"{RESULTS}/nlp/tokenizer/{CORPUS}.model",
    log:
        f"{RESULTS}/logs/nlp/tokenizer_{CORPUS}.log",
    benchmark:
        f"{RESULTS}/benchmarks/nlp/tokenizer_{CORPUS}.tsv"
    conda:
        "../../envs/kvt.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        vocab_size=tokenizer_vocab(config["nlp"]),
        code=FAM["nlp"].code,
    script:
        "../../scripts/nlp_tokenizer.py"


rule nlp_charlm_train:
    input:
        data=f"{RESULTS}/data/{{task}}.json",
    output:
        model=f"{FAM['nlp'].run}/model.pt",
        run=f"{FAM['nlp'].run}/run.json",
        metrics=f"{FAM['nlp'].run}/metrics.csv",
    log:
        f"{RESULTS}/logs/nlp/train/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/nlp/train/{RUN}.tsv"
    wildcard_constraints:
        **FAM["nlp"].task_constraints("shakespeare"),
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=FAM["nlp"].runtime,
        mem_mb=FAM["nlp"].mem_mb,
    params:
        hparams=FAM["nlp"].hparams,
        device=config["device"],
        precision=config["precision"],
        code=FAM["nlp"].code,
    script:
        "../../scripts/train.py"


rule nlp_charlm_eval:
    input:
        model=rules.nlp_charlm_train.output.model,
        data=f"{RESULTS}/data/{{task}}.json",
    output:
        result=f"{FAM['nlp'].run}/test.json",
        sample=f"{FAM['nlp'].run}/sample.txt",
    log:
        f"{RESULTS}/logs/nlp/eval/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/nlp/eval/{RUN}.tsv"
    wildcard_constraints:
        **FAM["nlp"].task_constraints("shakespeare"),
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=20,
        mem_mb=FAM["nlp"].mem_mb,
    params:
        device=config["device"],
        precision=config["precision"],
        code=FAM["nlp"].code,
    script:
        "../../scripts/evaluate.py"


rule nlp_translation_train:
    input:
        data=f"{RESULTS}/data/{CORPUS}.json",
        tokenizer=rules.nlp_tokenizer.output.model,
    output:
        model=f"{FAM['nlp'].run}/model.pt",
        run=f"{FAM['nlp'].run}/run.json",
        metrics=f"{FAM['nlp'].run}/metrics.csv",
    log:
        f"{RESULTS}/logs/nlp/train/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/nlp/train/{RUN}.tsv"
    wildcard_constraints:
        **FAM["nlp"].task_constraints(TRANSLATION_TASKS),
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=FAM["nlp"].runtime,
        mem_mb=FAM["nlp"].mem_mb,
    params:
        hparams=FAM["nlp"].hparams,
        device=config["device"],
        precision=config["precision"],
        code=FAM["nlp"].code,
    script:
        "../../scripts/train.py"


rule nlp_translation_eval:
    input:
        model=rules.nlp_translation_train.output.model,
        data=f"{RESULTS}/data/{CORPUS}.json",
        tokenizer=rules.nlp_tokenizer.output.model,
    output:
        result=f"{FAM['nlp'].run}/test.json",
        translations=f"{FAM['nlp'].run}/translations.txt",
    log:
        f"{RESULTS}/logs/nlp/eval/{RUN}.log",
    benchmark:
        f"{RESULTS}/benchmarks/nlp/eval/{RUN}.tsv"
    wildcard_constraints:
        **FAM["nlp"].task_constraints(TRANSLATION_TASKS),
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    resources:
        gpu=1,
        runtime=30,
        mem_mb=FAM["nlp"].mem_mb,
    params:
        device=config["device"],
        precision=config["precision"],
        code=FAM["nlp"].code,
    script:
        "../../scripts/evaluate.py"


rule nlp_bleu_figure:
    input:
        summary=f"{RESULTS}/summary.csv",
        runs=lambda wildcards: FAM["nlp"].task_runs(wildcards.task),
    output:
        png=report(
            f"{RESULTS}/figures/nlp/bleu_{{task}}.png",
            caption="../report/bleu.rst",
            category="nlp",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "BLEU per epoch"},
        ),
        pdf=f"{RESULTS}/figures/nlp/bleu_{{task}}.pdf",
    log:
        f"{RESULTS}/logs/figures/nlp_bleu_{{task}}.log",
    wildcard_constraints:
        task=TRANSLATION_TASKS,
    conda:
        "../../envs/kvt.yaml"
    params:
        family="nlp",
        task="{task}",
        kind="curve",
        column="val_bleu",
        label="validation BLEU (greedy, fixed subset)",
        code=REPORT_CODE,
    script:
        "../../scripts/figures.py"


rule nlp_cross_attention:
    input:
        models=FAM["nlp"].first_models,
        data=f"{RESULTS}/data/{CORPUS}.json",
        tokenizer=rules.nlp_tokenizer.output.model,
    output:
        png=report(
            f"{RESULTS}/figures/nlp/cross_attention_{{task}}.png",
            caption="../report/cross_attention.rst",
            category="nlp",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "cross-attention"},
        ),
        pdf=f"{RESULTS}/figures/nlp/cross_attention_{{task}}.pdf",
    log:
        f"{RESULTS}/logs/figures/nlp_cross_attention_{{task}}.log",
    wildcard_constraints:
        task=TRANSLATION_TASKS,
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    params:
        device="cpu",
        code=FAM["nlp"].code,
    script:
        "../../scripts/nlp_cross_attention.py"
