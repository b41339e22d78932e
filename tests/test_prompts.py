"""chatgen.prompts: the files in prompts/ load as langchain-core templates, document their
variables, and are what the code uses."""

import re

import pytest

from chatgen.errors import ChatgenError
from chatgen.prompts import PROMPTS, load_prompt, render_prompt

FILES = sorted(PROMPTS.glob("*.txt"))


def test_the_folder_is_found_next_to_the_package():
    assert PROMPTS.is_dir() and {p.stem for p in FILES} >= {"native_unreadable_upload", "langchain_tool"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_prompt_documents_its_variables_at_its_top(path):
    head = re.match(r"\{\{!(.*?)\}\}\n", path.read_text(encoding="utf-8"), re.DOTALL)
    assert head, f"{path.name} must open with a {{{{! ... }}}} comment"
    documented = re.search(r"Variables:(.*)", head.group(1), re.DOTALL).group(1)
    variables = load_prompt(path.stem).input_variables
    assert (documented.strip().startswith("none") and not variables) or all(v in documented for v in variables)
    assert "{{!" not in render_prompt(path.stem, **{v: "x" for v in variables})  # the comment is not part of the text


def test_errors_name_the_prompt():
    with pytest.raises(ChatgenError, match="prompt 'no_such_prompt' is missing"):
        load_prompt("no_such_prompt")
    with pytest.raises(ChatgenError, match="takes no variables"):
        render_prompt("langchain_tool", name="x")


def test_the_native_backend_answers_an_unreadable_upload_with_the_file(tiny_dir):
    import json

    from chatgen.backends.native import UNREADABLE_PROMPT, NativeConfig

    text = render_prompt(UNREADABLE_PROMPT)
    assert text.startswith("I can't read this picture") and "\n" not in text
    d = json.loads((tiny_dir / "config.json").read_text())
    assert d["unreadable_reply"] == text  # a new checkpoint stores the wording
    d.pop("unreadable_reply")
    assert NativeConfig.from_dict(d).unreadable_reply == text  # an older config falls back to the file


def test_a_space_export_carries_the_prompts(tmp_path):
    from chatgen.space import export_space

    out = export_space(tmp_path / "space")
    assert sorted(p.name for p in (out / "prompts").glob("*.txt")) == sorted(p.name for p in FILES)
