"""`python -m pixelpool` is the `pixelpool` command."""
from pixelpool.cli import main

main()
