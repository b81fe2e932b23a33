"""`make bench`: run every bench script and print one table of figures."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from bench.harness import install_request_counter, table


def main() -> int:
    install_request_counter()
    rows = [("figure", "value", "target")]
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    for name in (sys.argv[1:] or names):
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name} …", file=sys.stderr, flush=True)
        rows.extend(module.run())
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
