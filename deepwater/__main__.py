"""python -m deepwater: the `deepwater` command (deepwater/cli.py)."""
import sys

from .cli import main

sys.exit(main())
