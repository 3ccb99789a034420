"""A catalog of bad settings, as a user gives them on the command line (`--config KEY=VALUE`):
each stops while the configuration is resolved, before the workflow schedules any job, with a
message naming the setting. Grouped by kind; tests/test_workflow.py runs some through Snakemake.
"""

import pytest
from kvt.config import ConfigError, load_config, parse_overrides

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]

# (kind, KEY=VALUE arguments, what the message must contain: the setting, and the problem)
CASES = [
    # top level
    ("name", ["preset=gpu"], "unknown preset 'gpu'"),
    ("name", ["device=tpu"], "device: 'tpu' is not one of"),
    ("name", ["precision=fp16"], "precision: 'fp16' is not one of"),
    ("name", ["attentions=[qk]"], "attentions[0]: 'qk' is not one of"),
    ("name", ["families=[nlp]"], "families[0]: 'nlp' is not one of"),
    ("bound", ["threads=0"], "threads: 0 is less than the minimum of 1"),
    ("bound", ["gpu_slots=0"], "gpu_slots: 0 is less than the minimum of 1"),
    ("type", ["keep_last=maybe"], "keep_last: 'maybe' is not of type 'boolean'"),
    ("key", ["data={dri: x}"], "'dri' was unexpected"),
    ("bound", ["data={retries: 0}"], "data.retries: 0 is less than the minimum of 1"),
    ("seed", ["seeds=[]"], "seeds: [] should be non-empty"),
    ("seed", ["seeds=[0, 0]"], "seeds: [0, 0] has non-unique elements"),
    ("seed", ["seeds=[-1]"], "seeds[0]: -1 is less than the minimum of 0"),
    ("seed", ["seeds=[4294967296]"], "seeds[0]: 4294967296 is greater than the maximum"),
    ("path", ["data={dir: README.md}"], "data.dir='README.md' is a file, not a folder"),
    ("path", ["data={text_base: /nonexistent/mirror}"], "data.text_base='/nonexistent/mirror'"),
    ("path", ["data={text_base: ftp://host/x}"], "data.text_base='ftp://host/x': a URL of scheme"),
    ("path", ["data={archives: [/nonexistent]}"], "data.archives[0]='/nonexistent' does not exist"),
    ("path", ["results=README.md"], "results='README.md' is a file, not a folder"),
    ("path", ["results=" + "r" * 300], "has 300 characters, above the"),
    ("path", ["results=res{x}"], "results='res{x}' holds a brace"),
    # synthetic
    ("non-finite", ["synthetic={lr: nan}"], "synthetic.lr: nan is not a finite number"),
    ("non-finite", ["synthetic={lr: inf}"], "synthetic.lr: inf is not a finite number"),
    ("non-finite", ["synthetic={grad_clip: -.inf}"], "synthetic.grad_clip: -inf is not a finite"),
    ("non-finite", ["synthetic={dropout: nan}"], "synthetic.dropout: nan is not a finite number"),
    ("probability", ["synthetic={dropout: 1}"], "synthetic.dropout: 1 is greater than or equal"),
    ("bound", ["synthetic={dropout: -0.1}"], "synthetic.dropout: -0.1 is less than the minimum"),
    ("bound", ["synthetic={epochs: 0}"], "synthetic.epochs: 0 is less than the minimum of 1"),
    ("bound", ["synthetic={warmup_steps: -1}"], "synthetic.warmup_steps: -1 is less than"),
    ("name", ["synthetic={tasks: [sorting]}"], "synthetic.tasks[0]: 'sorting' is not one of"),
    ("name", ["synthetic={select: first}"], "synthetic.select: 'first' is not one of"),
    ("type", ["synthetic={lr: fast}"], "synthetic.lr: 'fast' is not of type 'number'"),
    ("key", ["synthetic={epoch: 1}"], "'epoch' was unexpected"),
    ("seed", ["synthetic={seeds: [4294967296]}"], "synthetic.seeds[0]: 4294967296 is greater"),
    ("cross-field", ["synthetic={grid: {heads: [3]}}"], "d_model=64 is not divisible by heads=3"),
    ("cross-field", ["synthetic={grid: {seq_len: [9]}}"], "swap needs even sequence lengths"),
    ("cross-field", ["synthetic={train_size: 100}"], "synthetic.train_size=100 is smaller than"),
    # vision
    ("non-finite", ["vision={mnist: {lr: nan}}"], "vision.mnist.lr: nan is not a finite number"),
    ("non-finite", ["vision={cifar10: {weight_decay: inf}}"], "vision.cifar10.weight_decay: inf"),
    ("bound", ["vision={cifar10: {lr: -1}}"], "vision.cifar10.lr: -1"),
    ("seed", ["vision={split_seed: 4294967296}"], "vision.split_seed: 4294967296 is greater"),
    ("name", ["vision={cifar100: {norm_stats: imagenet}}"], "vision.cifar100.norm_stats"),
    ("data size", ["vision={mnist: {train_size: 10}}"], "vision.mnist.batch_size=200 is more than"),
    ("data size", ["vision={mnist: {val_size: 60000}}"], "vision.mnist.val_size=60000 is more"),
    ("data size", ["vision={mnist: {test_size: 10001}}"], "vision.mnist.test_size=10001 is more"),
    ("data size", ["vision={cifar10: {batch_size: 50001}}"], "vision.cifar10.batch_size=50001"),
    (
        "data size",
        ["vision={tasks: [digits], digits: {val_size: 1437}}"],
        "vision.digits.val_size=1437 is more than digits allows",
    ),
    (
        "unlisted section",
        ["families=[synthetic]", "vision={cifar10: {grid: {d_model: [30]}}}"],
        "vision.cifar10.grid: d_model=30 is not divisible by heads=4",
    ),
    # anomaly
    ("non-finite", ["anomaly={lr: .nan}"], "anomaly.lr: nan is not a finite number"),
    ("probability", ["anomaly={input_dropout: 1}"], "anomaly.input_dropout: 1 is greater than"),
    ("probability", ["anomaly={val_fraction: 1}"], "anomaly.val_fraction: 1 is greater than"),
    ("seed", ["anomaly={split_seed: -1}"], "anomaly.split_seed: -1 is less than the minimum"),
    ("name", ["anomaly={backbone: resnet}"], "anomaly.backbone: 'resnet' is not one of"),
    ("bound", ["anomaly={set_size: 2}"], "anomaly.set_size: 2 is less than the minimum of 3"),
    ("data size", ["anomaly={set_size: 600}"], "anomaly.set_size=600 is more than cifar100"),
    ("data size", ["anomaly={train_images: 60000}"], "anomaly.train_images=60000 is more than"),
    ("data size", ["anomaly={test_images: 10001}"], "anomaly.test_images=10001 is more than"),
    # charlm
    ("probability", ["charlm={shakespeare: {dropout: 1.0}}"], "charlm.shakespeare.dropout: 1.0"),
    ("non-finite", ["charlm={shakespeare: {lr: inf}}"], "charlm.shakespeare.lr: inf is not a"),
    ("name", ["charlm={shakespeare: {select: worst}}"], "charlm.shakespeare.select: 'worst'"),
    ("cross-field", ["charlm={shakespeare: {grid: {heads: [5]}}}"], "d_model=192 is not divisible"),
    ("bound", ["charlm={shakespeare: {block: 1}}"], "charlm.shakespeare.block: 1 is less than"),
    (
        "data size",
        ["charlm={shakespeare: {block: 2000000}}"],
        "charlm.shakespeare.block=2000000 is more than shakespeare allows",
    ),
    ("unlisted section", ["families=[vision]", "charlm={tasks: [tiny]}"], "charlm.tasks[0]"),
    # translation
    (
        "probability",
        ["translation={multi30k_en_de: {label_smoothing: 1}}"],
        "translation.multi30k_en_de.label_smoothing: 1 is greater than or equal",
    ),
    (
        "non-finite",
        ["translation={multi30k_de_en: {lr: inf}}"],
        "translation.multi30k_de_en.lr: inf is not a finite number",
    ),
    ("name", ["translation={multi30k_en_de: {cross: qq}}"], "translation.multi30k_en_de.cross"),
    ("bound", ["translation={multi30k_en_de: {max_len: 3}}"], "translation.multi30k_en_de.max_len"),
    (
        "data size",
        ["translation={multi30k_en_de: {val_bleu_size: 5000}}"],
        "translation.multi30k_en_de.val_bleu_size=5000 is more than multi30k allows",
    ),
    (
        "data size",
        [
            "translation={multi30k_en_de: {vocab_size: 1000000}, multi30k_de_en: {vocab_size: 1000000}}"
        ],
        "translation.multi30k_en_de.vocab_size=1000000 is more than multi30k allows: at most 83574",
    ),
    (
        "data size",
        ["translation={multi30k_en_de: {vocab_size: 50}, multi30k_de_en: {vocab_size: 50}}"],
        "translation.multi30k_de_en.vocab_size=50 is less than multi30k allows: at least 106",
    ),
    (
        "cross-field",
        ["translation={multi30k_de_en: {vocab_size: 4000}}"],
        "multi30k_en_de.vocab_size=8000, multi30k_de_en.vocab_size=4000",
    ),
    # human_numbers
    ("bound", ["human_numbers={grid: {lr: [0]}}"], "human_numbers.grid.lr[0]: 0 is less than or"),
    ("non-finite", ["human_numbers={grid: {lr: [nan]}}"], "human_numbers.grid.lr[0]: nan is not"),
    ("probability", ["human_numbers={ff_dropout: 1}"], "human_numbers.ff_dropout: 1 is greater"),
    ("bound", ["human_numbers={moms: [0.9, 0.8]}"], "human_numbers.moms: [0.9, 0.8] is too short"),
    ("bound", ["human_numbers={pct_start: 1}"], "human_numbers.pct_start: 1 is greater than or"),
    ("cross-field", ["human_numbers={heads: 3}"], "d_model=64 is not divisible by heads=3"),
    (
        "data size",
        ["human_numbers={grid: {seq_len: [1000]}}"],
        "human_numbers.batch_size=64 is more than human_numbers allows: at most 50",
    ),
]


def resolve_args(args: list[str]) -> dict:
    return load_config(parse_overrides(args), root=ROOT)


@pytest.mark.parametrize(
    "kind, args, named", CASES, ids=[f"{kind}:{' '.join(a)}" for kind, a, _ in CASES]
)
def test_bad_setting_stops_before_any_job_naming_it(kind, args, named):
    with pytest.raises(ConfigError) as err:
        resolve_args(args)
    assert named in str(err.value), str(err.value)


def test_the_catalog_covers_every_family_and_the_top_level():
    from kvt.families import FAMILIES

    sections = {a.split("=")[0] for _, args, _ in CASES for a in args}
    assert set(FAMILIES) <= sections
    assert len(CASES) >= 40


def test_the_presets_pass():
    for preset in ("paper", "cpu", "smoke"):
        resolve_args([f"preset={preset}"])
