"""`pixelpool`: the command line of the SDK. Every command takes `--json` (one JSON document on
stdout, no bars); long operations show Rich progress bars on stderr; exit codes are in output.py.
The commands live in `pixelpool.commands`, one module per concept; importing them registers them."""
from __future__ import annotations

# Imported for their effect, in the order `pixelpool --help` lists their commands.
from pixelpool.commands import account, registry, projects, exports, datasets  # noqa: F401,I001
from pixelpool.commands.base import app


def main() -> None:
    app()
