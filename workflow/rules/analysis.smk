# What the variants learn (docs/analysis.md): the attention analyses over every family's runs,
# from the files their eval jobs write, and one attention gallery per family. Light: on a
# cluster they run where Snakemake runs.
