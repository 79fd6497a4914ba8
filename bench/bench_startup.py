"""Start-up cost of `jenkinsctl --version` and `--help`, as a ratio to a bare
`python3 -c pass` measured in the same run.

These two paths must not import docker or python-jenkins; the ratio shows
whether that still holds in practice.  Run: .venv/bin/python bench/bench_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 15


def timed(argv: list[str]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    base = timed([sys.executable, "-c", "pass"])
    rows = [("python3 -c pass", base, 1.0)]
    for args in (["--version"], ["--help"], ["validate", "--help"]):
        t = timed([sys.executable, "-m", "jenkinsctl", *args])
        rows.append((f"jenkinsctl {' '.join(args)}", t, t / base))
    print(f"{'command':<26} {'median ms':>10} {'ratio':>7}")
    for name, t, ratio in rows:
        print(f"{name:<26} {t * 1000:>10.1f} {ratio:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
