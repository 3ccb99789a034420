"""On a GPU: the paths only a CUDA device takes. Skipped without one (CI has none).

    make test ARGS="tests/test_cuda.py"                     # on a GPU machine
    KVT_TEST_DEVICE=cpu make test ARGS="tests/test_cuda.py"  # the same checks on the CPU

Covers: every attention path against the float64 CPU reference (the channel form pads q, k and v
to a multiple of 8 on CUDA); bf16 autocast; several seeds trained together, each on its own CUDA
stream, against the same seeds trained alone; a bf16 training run; the GPU check; slot claims.
"""

import csv
import os
from pathlib import Path

import pytest
import torch
from conftest import tiny_hparams
from kvt import build_attention, make_mask, runner
from kvt.attention_names import attention_names
from kvt.bench import gpu
from kvt.device import pick_device

DEVICE = torch.device(os.environ.get("KVT_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(
    DEVICE.type == "cuda" and not torch.cuda.is_available(),
    reason="needs a CUDA device (KVT_TEST_DEVICE=cpu runs it on the CPU)",
)
ROOT = Path(__file__).resolve().parents[1]
VARIANTS = tuple(attention_names())  # every registered variant


@pytest.fixture(autouse=True)
def strict_float32():
    """TF32 off: the float32 comparisons below mean float32."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def outputs_and_grads(module, x, mask):
    x = x.detach().clone().requires_grad_(True)
    out = module(x, mask=mask)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(out)
    names, params = zip(*module.named_parameters())
    grads = torch.autograd.grad((out.float() * g.float()).sum(), [x, *params])
    return out.detach().float().cpu(), {
        n: t.float().cpu() for n, t in zip(("input", *names), grads)
    }


def modules(variant, pos_form):
    torch.manual_seed(0)
    exact = build_attention(variant, 64, 4, pos_dim=10, max_len=64).double().eval()
    with torch.no_grad():
        for p in exact.parameters():
            p.normal_(0.0, 0.3)
    exact.sdpa = False
    fast = build_attention(variant, 64, 4, pos_dim=10, max_len=64).eval()
    fast.load_state_dict({k: v.float() for k, v in exact.state_dict().items()})
    for m in (exact, fast):
        m.pos_form = pos_form
    return exact, fast.to(DEVICE)


@pytest.mark.parametrize("mask_kind", ["none", "causal+padding"])
@pytest.mark.parametrize("pos_form", ["channel", "bias"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_path_on_the_device_equals_the_float64_reference(variant, pos_form, mask_kind):
    if pos_form == "bias" and variant != "kv_pos":
        pytest.skip("one form only without the positional term")
    exact, fast = modules(variant, pos_form)
    b, n = 3, 40  # n > 2 d_h: auto would pick the channel form; both are forced here
    x = torch.randn(b, n, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pad = torch.zeros(b, n, dtype=torch.bool)
    pad[1, -5:] = True
    masks = {
        "none": None,
        "causal+padding": lambda dev: make_mask(
            n, causal=True, key_padding=pad.to(dev), device=dev
        ),
    }
    mask = masks[mask_kind]
    ref_out, ref_grads = outputs_and_grads(
        exact, x, mask(torch.device("cpu")).double() if mask else None
    )
    out, grads = outputs_and_grads(fast, x.float().to(DEVICE), mask(DEVICE) if mask else None)
    torch.testing.assert_close(out, ref_out.float(), rtol=1e-4, atol=1e-4)
    # relative to the largest gradient: map_pos.bias's exact gradient is 0 (the row softmax
    # cancels it), its float32 one rounding noise
    scale = max(g.abs().max().item() for g in ref_grads.values())
    for name, g in ref_grads.items():
        torch.testing.assert_close(
            grads[name] / scale, g.float() / scale, rtol=1e-3, atol=1e-5, msg=name
        )


@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_autocast_on_the_device_stays_near_float32(variant):
    _, fast = modules(variant, "channel")
    x = torch.randn(3, 40, 64, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    exact, _ = outputs_and_grads(fast, x, None)
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        low, grads = outputs_and_grads(fast, x, None)
    assert torch.isfinite(low).all()
    assert (low - exact).abs().max() <= 0.03 * exact.abs().max()  # bfloat16 has 8 mantissa bits
    assert all(torch.isfinite(g).all() for g in grads.values())


def rows(folder):
    with open(Path(folder) / "metrics.csv", newline="") as f:
        return [
            {k: float(v) for k, v in r.items() if k not in ("wall_time", "epoch")}
            for r in csv.DictReader(f)
        ]


def test_seeds_trained_together_on_their_streams_equal_seeds_trained_alone(tmp_path):
    """Dropout on: each seed draws from its own RNG state on its own stream. GPU kernels need not
    be bit-reproducible (atomics in some backward passes), so numbers agree to float tolerance."""
    hps = [tiny_hparams("synthetic", seed=s, dropout=0.2) for s in (0, 1, 2)]
    for hp in hps:
        folder = tmp_path / "alone" / f"seed{hp['seed']}"
        runner.train(hp, folder, folder / "model.pt", DEVICE)
    dirs = [tmp_path / "together" / f"seed{hp['seed']}" for hp in hps]
    runner.train_together(hps, dirs, [d / "model.pt" for d in dirs], DEVICE)
    for hp, together in zip(hps, dirs):
        alone = tmp_path / "alone" / f"seed{hp['seed']}"
        a, b = rows(alone), rows(together)
        assert [r["step"] for r in a] == [r["step"] for r in b]
        for ra, rb in zip(a, b):
            for key in ("train_loss", "val_loss"):
                if ra[key] == ra[key]:  # not the step-0 row's nan train loss
                    assert rb[key] == pytest.approx(ra[key], rel=1e-3, abs=1e-4), (hp["seed"], key)
            assert rb["val_acc"] == pytest.approx(ra["val_acc"], abs=0.01)
    assert rows(dirs[0]) != rows(dirs[1])


def test_a_bf16_run_trains_and_tests_on_the_device(tmp_path):
    hp = tiny_hparams("synthetic")
    options = runner.Options(precision="bf16")
    record = runner.train(hp, tmp_path, tmp_path / "model.pt", DEVICE, options=options)
    result = runner.test(tmp_path / "model.pt", tmp_path / "test.json", DEVICE, precision="bf16")
    assert record["options"]["precision"] == "bf16" and 0 <= result["test_acc"] <= 1
    assert all(r["val_loss"] == r["val_loss"] for r in rows(tmp_path))  # finite, no nan


def test_the_gpu_check_reports_throughput_and_peak_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "gpu.csv"
    gpu.main(
        [
            "--device",
            DEVICE.type,
            "--steps",
            "2",
            "--cases",
            "synthetic",
            "--precision",
            "fp32",
            "bf16",
            "--out",
            str(out),
        ]
    )
    with open(out, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 3 * len(VARIANTS) * 2  # 3 configurations x every variant x 2 precisions
    assert all(float(r["samples_per_s"]) > 0 for r in table)
    if DEVICE.type == "cuda":
        assert all(float(r["peak_mib"]) > 0 for r in table)
        assert torch.cuda.get_device_name(0) in table[0]["gpu"]


def test_jobs_share_a_gpu_through_slots(tmp_path, monkeypatch):
    if DEVICE.type != "cuda":
        pytest.skip("slots are claimed on GPUs only")
    import kvt.device as device

    monkeypatch.setenv("KVT_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(device, "_held", [])
    count = torch.cuda.device_count()
    got = [pick_device("cuda", slots=2) for _ in range(2 * count)]
    assert sorted(d.index for d in got) == sorted(list(range(count)) * 2)
