"""deepwater's version, read from the installed package's metadata: pyproject.toml is its one source."""
from importlib import metadata

__version__ = metadata.version("deepwater")
