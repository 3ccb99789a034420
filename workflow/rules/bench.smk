# Benchmarks (not part of the default target): `snakemake --cores all bench`. They measure this
# machine; run them alone on it.


rule bench_layer:
    output:
        csv=f"{RESULTS}/bench/layer.csv",
        ratios=f"{RESULTS}/bench/layer_ratios.csv",
        md=f"{RESULTS}/bench/layer.md",
    log:
        f"{RESULTS}/logs/bench/layer.log",
    conda:
        "../../envs/kvt.yaml"
    threads: workflow.cores
    resources:
        gpu=1,
    params:
        device=config["device"],
        code=ALL_CODE,
    script:
        "../../scripts/bench_layer.py"


rule bench:
    input:
        rules.bench_layer.output,
