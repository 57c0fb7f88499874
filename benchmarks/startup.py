"""Start-up time of the command line: `aegen --help` (and friends) against a bare interpreter.

    python benchmarks/startup.py [--repeats 15]

Prints medians and the difference to `python -c pass`; the target is under 0.3 s more.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_time(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    aegen = shutil.which("aegen") or "aegen"
    bare = median_time([sys.executable, "-c", "pass"], args.repeats)
    print(f"python -c pass          {bare:.3f} s")
    for extra in (["--help"], ["plugins"], ["generate", "--help"]):
        took = median_time([aegen, *extra], args.repeats)
        name = "aegen " + " ".join(extra)
        print(f"{name:<23} {took:.3f} s   (+{took - bare:.3f} s over the bare interpreter)")


if __name__ == "__main__":
    main()
