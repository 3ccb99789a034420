# Multi30k translation: the data rule (staged, fetched from data.text_base, or fixtures; every
# file checked against its recorded sha256), the one joint tokenizer both tasks (multi30k_en_de,
# multi30k_de_en) share, BLEU per epoch and the decoder's cross-attention. Train and eval jobs:
# runs.smk; tables and the loss/score figures: aggregate.smk (the report's NLP group, whose
# figures folder the figures here share).
from kvt.families.translation import CORPUS, TOKENIZER, tokenizer_vocab

TRANSLATION = FAM["translation"]
TRANSLATION_FIGURES = f"{RESULTS}/figures/{TRANSLATION.spec.report_group}"


# Downloads run where Snakemake runs: cluster nodes often have no network.
localrules:
    translation_data,
    translation_bleu_figure,


# The char-LM's text data rule (charlm.smk, included first: the registry's order), for Multi30k.
use rule charlm_data as translation_data with:
    wildcard_constraints:
        dataset=CORPUS,


rule translation_tokenizer:
    input:
        data=f"{RESULTS}/data/{CORPUS}.json",
    output:
        model=f"{RESULTS}/{TOKENIZER}",
    log:
        f"{RESULTS}/logs/translation/tokenizer_{CORPUS}.log",
    benchmark:
        f"{RESULTS}/benchmarks/translation/tokenizer_{CORPUS}.tsv"
    conda:
        "../../envs/kvt.yaml"
    resources:
        runtime=10,
        mem_mb=2000,
    params:
        vocab_size=tokenizer_vocab(config["translation"]),
        code=TRANSLATION.code,
    script:
        "../../scripts/translation_tokenizer.py"


rule translation_bleu_figure:
    input:
        summary=f"{RESULTS}/summary.csv",
        runs=lambda wildcards: TRANSLATION.summary_task_runs(
            wildcards.task, f"{TRANSLATION_FIGURES}/bleu_{wildcards.task}.png"
        ),
    output:
        png=report(
            f"{TRANSLATION_FIGURES}/bleu_{{task}}.png",
            caption="../report/bleu.rst",
            category="nlp",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "BLEU per epoch"},
        ),
        pdf=f"{TRANSLATION_FIGURES}/bleu_{{task}}.pdf",
    log:
        f"{RESULTS}/logs/figures/translation_bleu_{{task}}.log",
    wildcard_constraints:
        task=TRANSLATION.constraints["task"],
    conda:
        "../../envs/kvt.yaml"
    params:
        group=TRANSLATION.spec.report_group,
        task="{task}",
        kind="curve",
        column="val_bleu",
        label="validation BLEU (greedy, fixed subset)",
        code=REPORT_CODE,
    script:
        "../../scripts/figures.py"


rule translation_cross_attention:
    input:
        **TRANSLATION.inputs,
        models=TRANSLATION.first_models,
    output:
        png=report(
            f"{TRANSLATION_FIGURES}/cross_attention_{{task}}.png",
            caption="../report/cross_attention.rst",
            category="nlp",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "cross-attention"},
        ),
        pdf=f"{TRANSLATION_FIGURES}/cross_attention_{{task}}.pdf",
    log:
        f"{RESULTS}/logs/figures/translation_cross_attention_{{task}}.log",
    wildcard_constraints:
        task=TRANSLATION.constraints["task"],
    conda:
        "../../envs/kvt.yaml"
    threads: config["threads"]
    params:
        hparams=TRANSLATION.first_hparams,  # each model.pt must be its run's
        device="cpu",
        code=TRANSLATION.code,
    script:
        "../../scripts/translation_cross_attention.py"
