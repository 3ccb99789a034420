# Benchmarks (not part of the default target). They measure this machine: run them alone on it.
#   snakemake --cores all bench                           the attention layer, the training step
#   snakemake --cores all --config preset=smoke overhead  per-job overhead of the smoke preset


rule bench_layer:
    output:
        csv=f"{RESULTS}/bench/layer.csv",
        ratios=f"{RESULTS}/bench/layer_ratios.csv",
        md=f"{RESULTS}/bench/layer.md",
    log:
        f"{RESULTS}/logs/bench/layer.log",
    conda:
        "../../envs/kvt.yaml"
    threads: 64  # all cores: Snakemake lowers it to --cores
    resources:
        gpu=1,
    params:
        device=config["device"],
        code=ALL_CODE,
    script:
        "../../scripts/bench_layer.py"


rule bench_step:
    input:
        rules.bench_layer.output.csv,  # one benchmark at a time
    output:
        csv=f"{RESULTS}/bench/step.csv",
        md=f"{RESULTS}/bench/step.md",
    log:
        f"{RESULTS}/logs/bench/step.log",
    conda:
        "../../envs/kvt.yaml"
    threads: 64  # all cores: Snakemake lowers it to --cores
    resources:
        gpu=1,
    params:
        device=config["device"],
        code=ALL_CODE,
    script:
        "../../scripts/bench_step.py"


rule bench:
    input:
        rules.bench_layer.output,
        rules.bench_step.output,


# After the whole pipeline (its summary): Snakemake's benchmark file of every job against the time
# its training took.
rule overhead:
    input:
        summary=rules.summary.output.csv,
    output:
        csv=f"{RESULTS}/bench/overhead.csv",
        summary=f"{RESULTS}/bench/overhead_summary.csv",
    log:
        f"{RESULTS}/logs/bench/overhead.log",
    conda:
        "../../envs/kvt.yaml"
    params:
        code=ALL_CODE,
    script:
        "../../scripts/bench_overhead.py"
