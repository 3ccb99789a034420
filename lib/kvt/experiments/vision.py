"""The vision family's runtime (declaration: kvt.families.vision): ViT, image data, step, and
the figure of first-layer attention maps."""

import sys
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.integrity import verified_root
from ..data.vision import DATASETS, ImageBatches, eval_batches, load_splits, with_stats
from ..models.config import fields_from
from ..models.vit import VisionTransformer, ViTConfig
from .base import Experiment

SELECT_ON = ("val_acc", "max")
TRAIN = {"optimizer": "adamw", "schedule": "constant"}


def build_model(hp: dict) -> VisionTransformer:
    spec = DATASETS[hp["task"]]
    return VisionTransformer(
        fields_from(
            ViTConfig,
            hp,
            image_size=spec.image_size,
            channels=spec.channels,
            patch=spec.patch,
            classes=spec.classes,
        )
    )


def step(model, batch) -> dict:
    x, y = batch
    logits = model(x)
    return {
        "loss": F.cross_entropy(logits, y),
        "count": len(y),
        "acc": (logits.argmax(-1) == y).sum(),
    }


@lru_cache(maxsize=2)
def _splits(task, manifest, val_size, split_seed, train_size, test_size):
    # The files the data rule checked (official, or fixtures in fixture mode), unchanged since
    # (their sha256): torchvision's own md5 pass over them would only repeat that.
    return load_splits(
        task,
        verified_root(manifest),
        val_size=val_size,
        split_seed=split_seed,
        train_size=train_size,
        test_size=test_size,
        verify=False,
    )


def data_spec(hp: dict):
    """The run's dataset, normalised with the statistics its norm_stats names."""
    return with_stats(hp["task"], hp["norm_stats"])


def splits(hp: dict, inputs: dict) -> dict:
    """{train, val, test} of the run's dataset, read once per process from the data rule's files."""
    if "data" not in inputs:
        raise ValueError("a vision run needs the data rule's manifest as input 'data'")
    return _splits(
        hp["task"],
        str(inputs["data"]),
        hp["val_size"],
        hp["split_seed"],
        hp["train_size"],
        hp["test_size"],
    )


def train_data(hp: dict, inputs: dict) -> ImageBatches:
    x, y = splits(hp, inputs)["train"]
    data = data_spec(hp)
    return ImageBatches(x, y, hp["batch_size"], hp["seed"], data, augment=data.augment)


def eval_data(hp: dict, split: str, inputs: dict):
    x, y = splits(hp, inputs)[split]
    return eval_batches(x, y, hp["eval_batch"], data_spec(hp))


def first_layer_maps(model, hp: dict, inputs: dict, index: int = 0):
    """(image, label, maps, scores): test image `index`, and the first block's attention maps and
    pre-softmax scores (heads x n x n each) of `model` for it."""
    x, y = splits(hp, inputs)["test"]
    image = next(
        iter(eval_batches(x[index : index + 1], y[index : index + 1], 1, data_spec(hp))())
    )[0]
    model.eval()
    with torch.no_grad():
        maps = model.attention_maps(image)[0][0]
        block = model.blocks[0]
        scores = block.attn.scores(block.norm1(model.embed(image)))[0]
    return x[index], int(y[index]), maps, scores


# -- the family's own jobs (Snakemake scripts call these) -------------------------------------
def data_job(job) -> None:
    """The data rule: the dataset's files in place (staged, downloaded or fixtures) -> manifest."""
    from ..data.facts import to_record
    from ..data.vision import measure, prepare
    from ..jsonfiles import write_json
    from ..limits import check_measured

    p, dataset = job.params, job.wildcards.dataset
    # data.archives is read here, not a param: where checked files come from changes no result,
    # so listing another folder reruns nothing
    info = prepare(
        dataset,
        p.root,
        download_missing=p.download,
        fixtures=p.fixtures,
        retries=p.retries,
        archives=job.config["data"].get("archives", []),
    )
    facts = measure(dataset, p.root)
    print(
        f"{info['dataset']}: {info['source']}, {len(info['files'])} files in {info['root']}; "
        f"{facts}",
        file=sys.stderr,
    )
    # the settings from the resolved configuration, not params: a setting changed later reruns
    # no data rule (kvt.config.resolve has checked it against the declared facts)
    check_measured(job.config, dataset, facts)
    write_json({**info, "facts": to_record(facts)}, Path(job.output.manifest))


def attention_figure_job(job) -> None:
    """First-layer attention maps of one test image, one row per variant."""
    from .. import runner
    from ..jobs import inputs, setup
    from ..report.attention import attention_figure
    from ..report.figures import save

    device = setup(job)
    panels = {}
    # each model.pt must be its run's (params.hparams: first_models' runs; a copied file is refused)
    for path, hp in zip(job.input.models, job.params.hparams, strict=True):
        model, ckpt = runner.load_model(Path(path), device, expect=dict(hp))
        panels[ckpt["hparams"]["attention"]] = first_layer_maps(
            model.cpu(), ckpt["hparams"], inputs(job)
        )
    save(attention_figure(panels, job.wildcards.task), job.output.png, job.output.pdf)


class Vision(Experiment):
    """The ViT on image datasets (kvt.experiments.base)."""

    build_model = staticmethod(build_model)
    train_data = staticmethod(train_data)
    eval_data = staticmethod(eval_data)
    step = staticmethod(step)

    def fixture_inputs(self, hp: dict, root: Path) -> dict:
        """Fixture files of the run's dataset under root and the data rule's manifest."""
        from ..data.vision import prepare
        from ..jsonfiles import write_json

        info = prepare(hp["task"], Path(root) / "data", download_missing=False, fixtures=True)
        manifest = Path(root) / f"{hp['task']}.json"
        write_json(info, manifest)
        return {"data": str(manifest)}

    def random_batch(self, hp: dict, generator):
        spec, b = DATASETS[hp["task"]], hp["batch_size"]
        x = torch.randn(b, spec.channels, spec.image_size, spec.image_size, generator=generator)
        return x, torch.randint(spec.classes, (b,), generator=generator)

    def select_on(self, hp: dict) -> tuple[str, str]:
        return SELECT_ON

    def train_settings(self, hp: dict) -> dict:
        return TRAIN


EXPERIMENT = Vision()
