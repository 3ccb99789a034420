"""The files the attention analyses write under results/ (docs/analysis.md), named once: their rule
(workflow/rules/analysis.smk), all_targets (common.smk), kvt.expect and the job
(kvt.report.attention_terms.write_analysis) derive them from here. Light: no pandas, no torch."""

# output name of the attention_analysis rule -> path under results/
ATTENTION_ANALYSIS = {
    "diagonal_csv": "tables/diagonal.csv",
    "diagonal_md": "tables/diagonal.md",
    "diagonal_png": "figures/diagonal.png",
    "diagonal_pdf": "figures/diagonal.pdf",
    "terms_csv": "tables/kv_pos_terms.csv",
    "terms_md": "tables/kv_pos_terms.md",
    "terms_png": "figures/kv_pos_terms.png",
    "terms_pdf": "figures/kv_pos_terms.pdf",
}
