"""The docs site's generated parameter table (docs/hooks/parameters.py) and the pages' links to the notebooks."""
from __future__ import annotations

import importlib.util
import re
import types
from pathlib import Path

import pytest

from deepwater.training import parameters as params

ROOT = Path(__file__).resolve().parents[1]


def _hook():
    spec = importlib.util.spec_from_file_location("docs_parameters_hook", ROOT / "docs" / "hooks" / "parameters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page(uri: str):
    return types.SimpleNamespace(file=types.SimpleNamespace(src_uri=uri))


def test_the_parameter_table_has_a_row_per_parameter_with_its_default_and_doc():
    hook = _hook()
    page = (ROOT / "docs" / "reference" / "parameters.md").read_text()
    rendered = hook.on_page_markdown(page, _page("reference/parameters.md"))
    rows = [line for line in rendered.splitlines() if line.startswith("| `")]
    assert [re.match(r"\| `(\w+)`", row).group(1) for row in rows] == list(params.PARAMETERS)
    rate = next(row for row in rows if row.startswith("| `learning_rate`"))
    assert f"`{params.PARAMETERS['learning_rate'].default!r}`" in rate and "| yes |" in rate
    assert "| no |" in next(row for row in rows if row.startswith("| `hidden`"))
    assert hook.on_page_markdown("PARAMETERS_TABLE", _page("index.md")) == "PARAMETERS_TABLE"  # other pages as they are


def test_a_parameter_without_a_doc_fails_the_build(monkeypatch):
    from mkdocs.exceptions import PluginError

    hook = _hook()
    undocumented = params.Parameter("new_knob", 1, params.PARAMETERS["epochs"].check, " ")
    monkeypatch.setitem(params.PARAMETERS, "new_knob", undocumented)
    with pytest.raises(PluginError, match="new_knob"):
        hook.on_page_markdown("PARAMETERS_TABLE", _page("reference/parameters.md"))
    with pytest.raises(PluginError, match="marker"):
        hook.on_page_markdown("no table here", _page("reference/parameters.md"))


def test_the_site_lists_every_notebook_and_guide_page():
    config = (ROOT / "mkdocs.yml").read_text()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert f"notebooks/{notebook.name}" in config, notebook.name
    for page in (ROOT / "docs").rglob("*.md"):
        assert str(page.relative_to(ROOT / "docs")) in config or "hooks" in page.parts, page
