"""python -m deepwater: the `deepwater` command (deepwater/cli.py)."""
import sys

from deepwater.cli import main

sys.exit(main())
