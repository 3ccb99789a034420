"""CI's real-data check: every run of the Fashion-MNIST ViT reached the minimum test accuracy.
Usage: check_vision.py RESULTS [MIN_ACC]. Prints the table, then one line per run; exits 1 if a
run is missing or below MIN_ACC (default 0.70; chance is 0.10)."""

import csv
import sys
from pathlib import Path

import yaml

# the variants the check's configuration runs
EXPECTED = set(
    yaml.safe_load((Path(__file__).parent / "fashion_mnist.yaml").read_text())["attentions"]
)


def main(results: Path, minimum: float) -> int:
    print((results / "tables" / "vision.md").read_text())
    with open(results / "summary.csv", newline="") as f:
        runs = [
            r for r in csv.DictReader(f) if r["family"] == "vision" and r["task"] == "fashion_mnist"
        ]
    failures = []
    for r in runs:
        acc = float(r["test_acc"])
        print(f"{r['cfg']} {r['attention']} seed {r['seed']}: test accuracy {acc:.4f}")
        if not acc >= minimum:
            failures.append(f"{r['attention']} seed {r['seed']}: {acc:.4f} < {minimum}")
    missing = EXPECTED - {r["attention"] for r in runs}
    if missing:
        failures.append(f"no run of {', '.join(sorted(missing))} in {results / 'summary.csv'}")
    for line in failures:
        print(f"FAILED: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.70))
