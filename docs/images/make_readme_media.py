"""Remake README.md's picture and video with the commands the README shows, and record where they
were made (CPU, flags, threads, torch, the fast path `auto` took) and their hashes in
readme-media.json, which tests/test_readme_media.py checks.

    python docs/images/make_readme_media.py      # from the repository's root
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COMMANDS = {
    "picture": ["generate", "--n", "64", "--seed", "0", "--out", "docs/images/default-samples.png"],
    "video": ["walk", "--n", "16", "--steps", "96", "--seed", "0", "--video",
              "docs/images/default-walk.mp4", "--scale", "2"],
}


def fingerprint() -> dict:
    """What decides the bytes besides the command (docs/cli.md, Reproducibility)."""
    import torch

    from aegen.hardware import cpu

    here = cpu()
    return {"cpu": here.name, "flags": here.notable, "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    record = {"machine": fingerprint(), "media": {}}
    for name, args in COMMANDS.items():
        done = subprocess.run([sys.executable, "-m", "aegen", *args, "--force", "--json"],
                              cwd=ROOT, check=True, capture_output=True, text=True)
        report = json.loads(done.stdout)
        path = ROOT / args[args.index("--out" if "--out" in args else "--video") + 1]
        fast = report["fast_path"]
        record["media"][name] = {
            "command": "aegen " + " ".join(args),
            "fast_path": {"precision": fast["precision"], "channels_last": fast["channels_last"]},
            "sha256": sha256(path),
        }
        print(f"{path.relative_to(ROOT)}: {fast['reason']}", file=sys.stderr)
    (HERE / "readme-media.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
