"""Dispatch ``python -m bench NAME ...`` to ``bench/NAME.py``'s ``main(argv)``."""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python -m bench NAME [options]   (NAME: ledger, ...; see bench/*.py)")
    module = importlib.import_module(f"bench.{sys.argv[1]}")
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
