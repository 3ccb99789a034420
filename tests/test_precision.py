"""The `precision` and `compile` options: what each changes, and what it must leave alone."""

import json

import pytest
import torch
from conftest import tiny_hparams
from kvt import precision, runner
from kvt.trainer import load_checkpoint
from torch import nn

CPU = torch.device("cpu")


class Stop(Exception):
    pass


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="fp32, tf32, bf16.*fp16"):
        runner.Options(precision="fp16")


@pytest.mark.parametrize("name, tf32", [("fp32", False), ("tf32", True), ("bf16", True)])
def test_configure_sets_the_tf32_switches(name, tf32):
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        precision.configure(name)
        assert torch.backends.cuda.matmul.allow_tf32 is tf32
        assert torch.backends.cudnn.allow_tf32 is tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def linear_dtypes(model, fn):
    """The output dtypes of every nn.Linear while fn runs."""
    seen = set()
    hooks = [
        m.register_forward_hook(lambda mod, a, out: seen.add(out.dtype))
        for m in model.modules()
        if isinstance(m, nn.Linear)
    ]
    try:
        fn()
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_training_steps_run_their_matmuls_in_the_precision(tmp_path, name, dtype):
    hp = tiny_hparams("synthetic", epochs=1)
    run = runner.prepare(
        hp, tmp_path, tmp_path / "model.pt", CPU, options=runner.Options(precision=name)
    )
    t = run.trainer
    t.start()
    assert linear_dtypes(t.model, t.advance) == {dtype}
    # the weights and the optimizer state stay float32 (bf16 only computes)
    assert {p.dtype for p in t.model.parameters()} == {torch.float32}
    assert {s["exp_avg"].dtype for s in t.optimizer.state.values()} == {torch.float32}


def test_bf16_trains_and_tests_within_reach_of_fp32(tmp_path, one_thread):
    hp = tiny_hparams("synthetic")
    out = {}
    for name in ("fp32", "bf16"):
        folder = tmp_path / name
        record = runner.train(
            hp, folder, folder / "model.pt", CPU, options=runner.Options(precision=name)
        )
        assert record["options"] == {"precision": name, "compile": False}
        out[name] = runner.test(folder / "model.pt", folder / "test.json", CPU, precision=name)
    assert (
        out["fp32"]["test_acc"] != out["bf16"]["test_acc"]
        or out["fp32"]["test_loss"] != out["bf16"]["test_loss"]
    )  # bf16 really computed differently
    assert abs(out["fp32"]["test_loss"] - out["bf16"]["test_loss"]) < 0.1


def test_a_checkpoint_of_another_precision_is_set_aside(tmp_path):
    hp = tiny_hparams("synthetic")

    def stop(step):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        runner.train(hp, tmp_path, tmp_path / "model.pt", CPU, on_step=stop)
    assert load_checkpoint(tmp_path / "last.pt")["meta"]["options"]["precision"] == "fp32"
    seen = []
    runner.train(
        hp,
        tmp_path,
        tmp_path / "model.pt",
        CPU,
        on_step=seen.append,
        options=runner.Options(precision="bf16"),
    )
    assert seen[0] == 1, "a bf16 run must not resume an fp32 checkpoint"
    assert (tmp_path / "last.stale.pt").exists()
    assert json.loads((tmp_path / "run.json").read_text())["options"]["precision"] == "bf16"


@pytest.mark.slow
def test_a_compiled_model_trains_like_the_eager_one(tmp_path, one_thread, monkeypatch):
    """A compiled model gives the eager run's numbers to float tolerance, and weights with the
    eager names (the state_dict a test job loads). The graphs run on the aot_eager backend: the
    same capture and autograd as inductor without its C++ builds (minutes on 2 cores)."""
    compile_module = nn.Module.compile
    backends = []

    def aot_eager(self, **kw):
        backends.append("aot_eager")
        return compile_module(self, backend="aot_eager")

    monkeypatch.setattr(nn.Module, "compile", aot_eager)
    hp = tiny_hparams("synthetic", epochs=1, dropout=0.0)
    records = {}
    for flag in (False, True):
        folder = tmp_path / str(flag)
        records[flag] = runner.train(
            hp, folder, folder / "model.pt", CPU, options=runner.Options(compile=flag)
        )
    eager = torch.load(tmp_path / "False/model.pt", weights_only=True)["model"]
    compiled = torch.load(tmp_path / "True/model.pt", weights_only=True)["model"]
    assert eager.keys() == compiled.keys()
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-3, atol=1e-4)
    assert records[True]["options"]["compile"] is True and backends == ["aot_eager"]
    assert records[True]["selected"]["val_loss"] == pytest.approx(
        records[False]["selected"]["val_loss"], rel=1e-3
    )
