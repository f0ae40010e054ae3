"""`python -m mesops` runs the CLI."""

from mesops.cli import main

main()
