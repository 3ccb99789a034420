"""The runtime contract of an experiment (a task family), typed: a subclass of `Experiment` in the
runtime module its declaration names (kvt.families: `module`), instantiated there as EXPERIMENT.

Required (a subclass without one of them fails when it is defined, naming what it lacks):
    build_model(hp) -> nn.Module
    train_data(hp, inputs) -> object with batches(start_step) (and steps_per_epoch for epochs)
    eval_data(hp, split, inputs) -> zero-argument callable yielding the fixed batches of a split
    step(model, batch) -> {"loss": mean loss tensor, "count": items, name: sum over items, ...}
    select_on(hp) -> (validation metric, "max" | "min"): what selects the weights
    train_settings(hp) -> fixed TrainConfig fields ({"optimizer": ..., ...}); the rest come from
        hp by name
Optional hooks, with defaults that add nothing:
    data_facts(hp, inputs) -> {name: value}: what the model needs from the data (e.g. a vocabulary
        size), added to hp before building and recorded with it
    val_scorer(hp, inputs, device) -> None, or a function model -> {name: value} that scores the
        validation metrics that are not sums over batches (val_<name>, e.g. BLEU); the trainer
        calls it at every validation (its argument val_metrics)
    example_tokens(hp, inputs, example) -> None, or a label per position of the example's input
        sequence (example: a test batch cut to its first example): the tick labels of the
        self-attention maps of that length in the attention gallery (kvt.gallery)
    test_extras(model, hp, inputs, device, out_dir) -> {name: value}: test metrics besides the
        step's sums (test_<name>), and files written into out_dir (only there: for the last
        weights it is a temporary folder)
For the test suite and the benchmarks (defaults: no inputs; no benchmark batch):
    fixture_inputs(hp, root) -> inputs: small fixture files under root for a run of hp (the
        declaration's tiny case), as its rules would hand them
    bench_facts(hp) -> {name: value}: what data_facts would add, without data (a vocabulary size)
    random_batch(hp, generator) -> one training batch of random data with the shapes and value
        ranges hp trains on
`inputs` are the paths a rule hands the job (data files, cached features); hparams hold no paths
that are not config values.
"""

from pathlib import Path

REQUIRED = ("build_model", "train_data", "eval_data", "step", "select_on", "train_settings")


class Experiment:
    """The base of every experiment's runtime (see the module docstring)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        missing = [name for name in REQUIRED if getattr(cls, name) is getattr(Experiment, name)]
        if missing:
            raise TypeError(
                f"experiment {cls.__module__}.{cls.__qualname__} lacks "
                f"{', '.join(missing)}: every experiment defines "
                f"{', '.join(REQUIRED)} (kvt.experiments.base)"
            )

    # -- required -------------------------------------------------------------------------------
    def build_model(self, hp: dict):
        raise NotImplementedError

    def train_data(self, hp: dict, inputs: dict):
        raise NotImplementedError

    def eval_data(self, hp: dict, split: str, inputs: dict):
        raise NotImplementedError

    def step(self, model, batch) -> dict:
        raise NotImplementedError

    def select_on(self, hp: dict) -> tuple[str, str]:
        raise NotImplementedError

    def train_settings(self, hp: dict) -> dict:
        raise NotImplementedError

    # -- optional hooks -------------------------------------------------------------------------
    def data_facts(self, hp: dict, inputs: dict) -> dict:
        return {}

    def val_scorer(self, hp: dict, inputs: dict, device):
        return None

    def test_extras(self, model, hp: dict, inputs: dict, device, out_dir: Path) -> dict:
        return {}

    def example_tokens(self, hp: dict, inputs: dict, example: tuple) -> list[str] | None:
        return None

    # -- the test suite and the benchmarks ------------------------------------------------------
    def fixture_inputs(self, hp: dict, root: Path) -> dict:
        return {}

    def bench_facts(self, hp: dict) -> dict:
        return {}

    def random_batch(self, hp: dict, generator):
        raise NotImplementedError(
            f"{type(self).__name__} supplies no random_batch: no benchmark "
            "case (kvt.experiments.base)"
        )
