"""chatgen's prompts: the files in the repository's top-level `prompts/` folder, loaded as
langchain-core prompt templates.

`prompts/<name>.txt` is a mustache `PromptTemplate`; it opens with a `{{! ... }}` comment naming
who uses it and the variables it takes (mustache drops the comment when rendering). The folder
sits next to the package, so an editable install or a clone finds it; a missing file is one
clear error, raised when the prompt is used (nothing is read at import time).
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.prompts import PromptTemplate

from .errors import ChatgenError

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"  # <repository>/prompts


def load_prompt(name: str) -> PromptTemplate:
    """The template in `prompts/<name>.txt`."""
    path = PROMPTS / f"{name}.txt"
    if not path.is_file():
        raise ChatgenError(f"prompt {name!r} is missing: chatgen reads {path}; install chatgen from a clone (pip install -e .) so its prompts/ folder is next to the package")
    return PromptTemplate.from_file(path, template_format="mustache", encoding="utf-8")


def render_prompt(name: str, /, **values: str) -> str:
    """`prompts/<name>.txt` filled in with `values` (exactly the variables it takes)."""
    template = load_prompt(name)
    missing = sorted(set(template.input_variables) - set(values))
    extra = sorted(set(values) - set(template.input_variables))
    if missing or extra:
        raise ChatgenError(f"prompt {name!r} takes {sorted(template.input_variables) or 'no variables'}; got {sorted(values) or 'none'}")
    return template.format(**values).strip()
