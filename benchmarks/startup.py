"""Start-up time of the command line: `aegen --help` (and friends) against a bare interpreter,
and a small sampling command against the floor of importing torch.

    python benchmarks/startup.py [--repeats 15] [--sampling-repeats 5]

Prints medians and the difference to `python -c pass` (the target is under 0.3 s more), then
`aegen generate --n 2 --steps 2` against `import torch` and `import torch, torchvision`: what a
sampling command costs beyond the torch it cannot do without.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


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
    parser.add_argument("--sampling-repeats", type=int, default=5)
    args = parser.parse_args()
    aegen = shutil.which("aegen") or "aegen"
    bare = median_time([sys.executable, "-c", "pass"], args.repeats)
    print(f"python -c pass          {bare:.3f} s")
    for extra in (["--help"], ["plugins"], ["generate", "--help"]):
        took = median_time([aegen, *extra], args.repeats)
        name = "aegen " + " ".join(extra)
        print(f"{name:<23} {took:.3f} s   (+{took - bare:.3f} s over the bare interpreter)")
    sampling(aegen, args.sampling_repeats)


def sampling(aegen: str, repeats: int) -> None:
    """A command that loads the default model and writes a grid, against the imports it needs."""
    torch_only = median_time([sys.executable, "-c", "import torch"], repeats)
    with_vision = median_time([sys.executable, "-c", "import torch, torchvision"], repeats)
    with tempfile.TemporaryDirectory() as work:
        command = [aegen, "generate", "--n", "2", "--steps", "2", "--seed", "0", "--force",
                   "-q", "--out", str(Path(work) / "grid.png")]
        took = median_time(command, repeats)
    print(f"python -c 'import torch'              {torch_only:.3f} s")
    print(f"python -c 'import torch, torchvision' {with_vision:.3f} s "
          f"(torchvision: +{with_vision - torch_only:.3f} s)")
    print(f"aegen generate --n 2 --steps 2        {took:.3f} s   "
          f"(+{took - torch_only:.3f} s over importing torch)")


if __name__ == "__main__":
    main()
