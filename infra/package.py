"""`make package`: SAM template + deployment zip from `chalice package --merge-template`, linted.

Usage: python -m infra.package OUTDIR [--stage prod]. Exits non-zero on any cfn-lint error.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from infra.template import render

ROOT = Path(__file__).resolve().parent.parent


def package(outdir: Path, stage: str = "prod") -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    merge = outdir.parent / f"{outdir.name}-merge-template.json"
    merge.write_text(json.dumps(render(), indent=2))
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    chalice = Path(sys.executable).with_name("chalice")
    subprocess.run(
        [str(chalice), "package", "--stage", stage, "--merge-template", str(merge), str(outdir)],
        cwd=ROOT, env=env, check=True,
    )
    return outdir / "sam.json"


def lint(template: Path) -> subprocess.CompletedProcess:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    return subprocess.run([str(cfn_lint), str(template)], capture_output=True, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--stage", default="prod")
    args = parser.parse_args()
    template = package(args.outdir.resolve(), args.stage)
    result = lint(template)
    sys.stdout.write(result.stdout + result.stderr)
    print(f"{template}: {'cfn-lint clean' if result.returncode == 0 else 'cfn-lint FAILED'}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
