"""`python -m data_collection collect ...` (see data_collection/cli.py)."""

import sys

from data_collection.cli import main

if __name__ == "__main__":
    sys.exit(main())
