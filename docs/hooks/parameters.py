"""MkDocs hook: the parameter table page, generated from deepwater.training.parameters.PARAMETERS (never written by hand).

reference/parameters.md holds the marker PARAMETERS_TABLE; this hook replaces it with one row per parameter:
its name, default, whether a checkpoint restart may change it, and its doc. A parameter without a doc fails
the build.
"""
from __future__ import annotations

from typing import Any

from mkdocs.exceptions import PluginError

MARKER = "PARAMETERS_TABLE"
PAGE = "reference/parameters.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def parameters_table() -> str:
    """The Markdown table of every parameter in the table, in its order."""
    from deepwater.training.parameters import PARAMETERS

    missing = [name for name, parameter in PARAMETERS.items() if not parameter.doc.strip()]
    if missing:
        raise PluginError(f"parameters without a doc in deepwater/training/parameters.py: {', '.join(missing)}; write one.")
    rows = ["| parameter | default | checkpoint restart may change it | what it does |", "|---|---|---|---|"]
    rows += [f"| `{p.name}` | `{_cell(repr(p.default))}` | {'yes' if p.checkpoint_mutable else 'no'} | {_cell(p.doc)} |"
             for p in PARAMETERS.values()]
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Put the generated table where the parameters page asks for it."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{PAGE} lost its {MARKER} marker, where the generated parameter table goes.")
    return markdown.replace(MARKER, parameters_table())
