"""Before `make run` starts the pipeline: which preset, and is there a GPU? With one, the paper
preset. Without one, say so with roughly how many CPU-hours the paper preset would need, and run
the cpu preset instead, so that nobody waits days without a word. A preset given on the command
line is kept (the paper preset on a CPU after a notice and a pause to press Ctrl-C). Torch-free and
quick (it runs before Snakemake builds the DAG).

    python -m kvt.preflight [KEY=VALUE ...] [snakemake arguments]

KEY=VALUE pairs (also those after `--config`) override config.yaml as on Snakemake's command line.
Prints the chosen preset on stdout (messages go to stderr).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

# Jobs are assumed to reach this share of one core's float32 matmul rate, counting only training
# matmuls (train_flops): calibrated on the cpu preset, whose measured times on 2 cores (docs/measurements.md)
# are within 1.3x of the estimate. Evaluation, data and start-up are in this factor.
EFFICIENCY = 0.12
WAIT_S = 10  # on a terminal, time to press Ctrl-C before the pipeline starts


def gpus() -> list[str]:
    """The NVIDIA GPUs this process may use, as `nvidia-smi -L` lists them ([] without a driver)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return []
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return (
        [line for line in out.stdout.splitlines() if line.startswith("GPU")]
        if out.returncode == 0
        else []
    )


def core_gflops(seconds: float = 0.3) -> float:
    """One core's float32 matmul rate (GFLOP/s), measured now: best of repeated 256^3 products."""
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = os.environ[
        "MKL_NUM_THREADS"
    ] = "1"
    import numpy as np  # after the thread settings: BLAS reads them when it loads

    a = np.random.default_rng(0).standard_normal((256, 256), dtype=np.float32)
    best, end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * 256**3 / best / 1e9


def workload(config: dict) -> dict[str, tuple[int, float]]:
    """{family: (train runs, training FLOPs of them all)} of the families the config runs."""
    from .families import FAMILIES
    from .families.base import train_flops

    out = {}
    for name in config["families"]:
        fam, section = FAMILIES[name], config[name]
        runs = fam.runs(section, config["attentions"], config["seeds"])
        flops = (
            sum(
                train_flops(hp, fam.workload(hp, section))
                for hp in (fam.hparams(section, *run) for run in runs)
            )
            if fam.workload
            else 0.0
        )
        out[name] = (len(runs), flops)
    return out


def cpu_hours(config: dict, gflops: float) -> dict[str, tuple[int, float]]:
    """{family: (train runs, estimated CPU-hours)} of the families the config runs."""
    rate = EFFICIENCY * gflops * 1e9 * 3600  # FLOPs per core-hour
    return {name: (runs, flops / rate) for name, (runs, flops) in workload(config).items()}


def notice(config: dict, gflops: float, cores: int) -> str:
    """What the configured preset costs on this machine's CPUs, per family."""
    from .config import preset_label

    work = cpu_hours(config, gflops)
    total = sum(hours for _, hours in work.values())
    lines = [
        (
            f"kvt: no GPU found (nvidia-smi lists none), or device is set to cpu: the "
            f"{preset_label(config['preset'])!r} preset would train on the CPU."
        ),
        (
            f"  Rough estimate: {_hours(total)} CPU-hours, about {_hours(total / cores)} "
            f"hours on this machine's {cores} cores (one core: {gflops:.0f} GFLOP/s measured):"
        ),
    ]
    for name, (runs, hours) in work.items():
        lines.append(f"    {name:<12} {runs:>4} runs  {_hours(hours):>8} CPU-hours")
    return "\n".join(lines)


def _hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 10 else f"{h:.1f}" if h >= 0.1 else "<0.1"


def gpu_hint(config: dict, found: list[str]) -> str | None:
    """How small runs can share a GPU, unless the config already shares it."""
    if config["gpu_slots"] > 1 or any(
        config[name].get("joint_seeds") for name in config["families"]
    ):
        return None
    return (
        "kvt: one job per GPU at a time. Small runs can share a GPU: add --config gpu_slots=8 "
        'and `joint_seeds: true` in a family\'s section (e.g. "<family>={joint_seeds: true}"), '
        f"and --resources gpu={8 * len(found)} (and precision=bf16 for speed over the paper's "
        "float32 numbers); docs/performance.md: On a GPU."
    )


AUTO_FROM, AUTO_TO = "paper", "cpu"  # without a GPU, a preset not asked for on the command line


def main(argv=None) -> int:
    from .config import ConfigError, load_config, parse_overrides, preset_label

    args = sys.argv[1:] if argv is None else list(argv)
    overrides = parse_overrides(args, strict=False)
    try:
        config = load_config(overrides)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    found = gpus() if config["device"] != "cpu" else []
    if found:
        print(f"kvt: {len(found)} GPU(s): " + "; ".join(found), file=sys.stderr)
        hint = gpu_hint(config, found)
        if hint:
            print(hint, file=sys.stderr)
        print(preset_label(config["preset"]))
        return 0
    gflops, cores = core_gflops(), os.cpu_count() or 1
    print(notice(config, gflops, cores), file=sys.stderr)
    if "preset" not in overrides and config["preset"] == AUTO_FROM:
        try:
            auto = load_config(
                {**overrides, "preset": AUTO_TO}
            )  # the cpu preset with these overrides
        except ConfigError as err:
            print(err, file=sys.stderr)
            return 1
        hours = sum(h for _, h in cpu_hours(auto, gflops).values())
        print(
            f"  So this runs the {AUTO_TO!r} preset instead: every task and variant, reduced "
            f"(estimate: {_hours(hours)} CPU-hours, about {_hours(hours / cores)} hours here; "
            "README: Presets). `make run PRESET=paper` runs the paper preset here anyway; "
            "docs/cluster.md: a SLURM cluster.",
            file=sys.stderr,
        )
        print(AUTO_TO)
        return 0
    dry = any(a in ("-n", "--dry-run", "--dryrun") for a in args)
    if config["preset"] == AUTO_FROM and sys.stdin.isatty() and not dry:
        print(
            f"  Starting in {WAIT_S} s; press Ctrl-C to stop (`make run` without PRESET runs "
            f"the {AUTO_TO!r} preset here).",
            file=sys.stderr,
            flush=True,
        )
        try:
            time.sleep(WAIT_S)
        except KeyboardInterrupt:
            return 130
    print(preset_label(config["preset"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
