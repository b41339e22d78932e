"""chatgen.langchain: the chat model through invoke, stream, batch and async; pictures across
calls; messages round trips; one-sentence errors; the tool; the README example."""

import asyncio
import base64
import io
import re
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage, messages_from_dict, messages_to_dict
from PIL import Image

from chatgen import world
from chatgen.assistant import Assistant
from chatgen.backends import load_backend
from chatgen.conversation import Session
from chatgen.defaults import SHIPPED
from chatgen.errors import ChatgenError
from chatgen.langchain import ChatGenChatModel, ChatGenTool, image_block, reply_image
from chatgen.params import GenerationParams

pytestmark = pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no trained model shipped in chatgen/weights/default")

ROOT = Path(__file__).resolve().parents[1]
DRAW, EDIT, ASK = "draw a dog on the grass", "make the dog a cat", "how many animals are there?"
DOG = world.Scene("grass", (world.Obj("dog", 1, 1),))
CAT = world.Scene("grass", (world.Obj("cat", 1, 1),))


@pytest.fixture(scope="module")
def assistant():
    return Assistant(load_backend(SHIPPED))


@pytest.fixture(scope="module")
def llm(assistant):
    return ChatGenChatModel(assistant=assistant, temperature=0, seed=0)


def tokens(msg) -> dict:
    return msg.response_metadata["chatgen"]["tokens"]


def png_of(block: dict) -> Image.Image:
    raw = base64.b64decode(block["base64"])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and block["mime_type"] == "image/png"
    return Image.open(io.BytesIO(raw))


# ---- invoke, and a conversation across calls ------------------------------------------------------
def test_invoke_answers_with_text_and_a_png_block(llm):
    reply = llm.invoke(DRAW)
    text, picture = reply.content_blocks
    assert text["type"] == "text" and text["text"] == reply.text and reply.text
    assert picture["type"] == "image" and png_of(picture).size == (96, 96)
    assert world.detect(reply_image(reply)) == DOG
    meta = reply.response_metadata["chatgen"]
    assert meta["seed"] == 0 and meta["params"]["temperature"] == 0 and meta["model"].startswith("native:")
    assert reply.usage_metadata["output_tokens"] == tokens(reply)["new_tokens"] > 36
    assert "chatgen" in png_of(picture).text  # the PNG carries its generation parameters
    answer = llm.invoke([HumanMessage(DRAW), reply, HumanMessage(ASK)])
    assert answer.content_blocks == [{"type": "text", "text": answer.text}] and reply_image(answer) is None


def test_a_second_call_edits_the_first_calls_picture_as_a_session_does(llm, assistant):
    first = llm.invoke([HumanMessage(DRAW)])
    second = llm.invoke([HumanMessage(DRAW), first, HumanMessage(EDIT)])
    assert world.detect(reply_image(first)) == DOG and world.detect(reply_image(second)) == CAT
    # the same two turns through a Session give the same replies
    s = Session()
    a, b = (assistant.respond(s, m, {"temperature": 0, "seed": 0}) for m in (DRAW, EDIT))
    assert (first.text, second.text) == (a.text, b.text)
    assert reply_image(second).tobytes() == b.image.tobytes()
    # the first turn is read back with its own ids, so the backend reuses its cached prefix
    assert tokens(second)["cached_tokens"] >= tokens(first)["prompt_tokens"] + tokens(first)["new_tokens"] - 1


def test_a_reply_changed_or_from_elsewhere_is_encoded_afresh(llm):
    first = llm.invoke(DRAW)
    bare = AIMessage(content=[{"type": "text", "text": first.text}, image_block(reply_image(first))])  # no chatgen metadata
    edited = llm.invoke([HumanMessage(DRAW), bare, HumanMessage(EDIT)])
    assert world.detect(reply_image(edited)) == CAT
    changed = first.model_copy(update={"content": [{"type": "text", "text": "Here is your dog."}, first.content[1]]})
    again = llm.invoke([HumanMessage(DRAW), changed, HumanMessage(EDIT)])
    assert world.detect(reply_image(again)) == CAT
    assert tokens(again)["cached_tokens"] < tokens(first)["prompt_tokens"] + tokens(first)["new_tokens"] - 1


def test_uploads_as_base64_a_data_url_or_an_openai_block_are_the_same_picture(llm):
    picture = world.render(world.Scene("beach", (world.Obj("dog", 1, 0), world.Obj("cat", 1, 2))))
    block = image_block(picture)
    forms = [
        block,
        {"type": "image", "url": f"data:image/png;base64,{block['base64']}"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{block['base64']}"}},
        {"type": "image", "source_type": "base64", "data": block["base64"], "mime_type": "image/png"},
    ]
    replies = [llm.invoke([HumanMessage(content=[{"type": "text", "text": ASK}, form])]) for form in forms]
    assert len({r.text for r in replies}) == 1 and not replies[0].text.startswith("I can't read")
    assert all(tokens(r)["prompt_tokens"] > 36 for r in replies)  # the picture's codes are in the prompt
    noise = Image.effect_noise((96, 96), 80).convert("RGB")  # not a picture the model can read: one sentence, no generation
    unread = llm.invoke([HumanMessage(content=[{"type": "text", "text": ASK}, image_block(noise)])])
    assert unread.text.startswith("I can't read this picture") and reply_image(unread) is None


def test_a_system_message_reaches_the_prompt(llm):
    plain = llm.invoke(ASK)
    with_system = llm.invoke([SystemMessage("be brief"), HumanMessage(ASK)])
    assert tokens(with_system)["prompt_tokens"] > tokens(plain)["prompt_tokens"]


# ---- stream, batch, async -------------------------------------------------------------------------
def test_stream_yields_text_then_previews_then_the_picture(llm):
    chunks = list(llm.stream(DRAW))
    kinds = [b["type"] for c in chunks for b in c.content]
    previews = [b for c in chunks for b in c.content if b.get("extras", {}).get("preview")]
    assert kinds[0] == "text" and len(previews) >= 1 and all(png_of(b).size == (96, 96) for b in previews)
    last = chunks[-1]
    assert last.chunk_position == "last" and last.response_metadata["chatgen"]["seed"] == 0
    full = sum(chunks[1:], chunks[0])
    invoked = llm.invoke(DRAW)
    assert full.text == invoked.text and reply_image(full).tobytes() == reply_image(invoked).tobytes()
    # the streamed reply continues the conversation like the invoked one (its ids come back too)
    edited = llm.invoke([HumanMessage(DRAW), full, HumanMessage(EDIT)])
    assert world.detect(reply_image(edited)) == CAT and tokens(edited)["cached_tokens"] > 36
    assert not any(b.get("extras") for c in llm.bind(previews=False).stream(DRAW) for b in c.content if b["type"] == "image")


def test_batch_and_async_give_the_invoked_replies(llm):
    prompts = [DRAW, "draw a cat on the beach"]
    one_by_one = [llm.invoke(p) for p in prompts]
    batched = llm.batch(prompts)
    assert [r.text for r in batched] == [r.text for r in one_by_one]
    assert [reply_image(r).tobytes() for r in batched] == [reply_image(r).tobytes() for r in one_by_one]

    async def run():
        reply = await llm.ainvoke(DRAW)
        chunks = [c async for c in llm.astream(DRAW)]
        return reply, sum(chunks[1:], chunks[0])

    reply, streamed = asyncio.run(run())
    assert reply.text == streamed.text == one_by_one[0].text
    assert world.detect(reply_image(reply)) == world.detect(reply_image(streamed)) == DOG


# ---- messages and parameters ----------------------------------------------------------------------
def test_messages_round_trip_with_their_pictures(llm):
    first = llm.invoke(DRAW)
    upload = image_block(world.render(DOG))
    conversation = [SystemMessage("hi"), HumanMessage(DRAW), first, HumanMessage(content=[{"type": "text", "text": EDIT}, upload])]
    restored = messages_from_dict(messages_to_dict(conversation))
    assert restored == conversation
    assert reply_image(restored[2]).tobytes() == reply_image(first).tobytes()
    assert llm.invoke(restored).text == llm.invoke(conversation).text


def test_parameters_from_the_constructor_bind_and_the_call(llm, tiny_dir):
    assert set(GenerationParams.__dataclass_fields__) <= set(ChatGenChatModel.model_fields)
    seeded = llm.bind(seed=5, temperature=1.0)
    a, b = seeded.invoke(DRAW), seeded.invoke(DRAW)
    assert a.response_metadata["chatgen"]["seed"] == 5 and reply_image(a).tobytes() == reply_image(b).tobytes()
    assert llm.invoke(DRAW, seed=5, temperature=1.0).text == a.text
    assert llm.bind(cfg_scale=2.0).invoke(DRAW).response_metadata["chatgen"]["params"]["cfg_scale"] == 2.0
    tiny = llm.bind(model=str(tiny_dir), max_new_tokens=8).invoke(DRAW)
    assert tiny.response_metadata["model_name"].startswith("native:tiny-random") and tiny.usage_metadata["output_tokens"] <= 8


def test_a_refiner_on_the_constructor_refines_every_picture(assistant):
    class Flip:
        def refine(self, image, prompt):
            return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    plain = ChatGenChatModel(assistant=assistant, temperature=0).invoke(DRAW)
    refined = ChatGenChatModel(assistant=assistant, temperature=0, refiner=Flip()).invoke(DRAW)
    assert reply_image(refined).tobytes() == Flip().refine(reply_image(plain), "").tobytes()


BAD = {
    "undecodable image": [HumanMessage(content=[{"type": "image", "base64": base64.b64encode(b"not a picture").decode(), "mime_type": "image/png"}])],
    "bad base64": [HumanMessage(content=[{"type": "image", "base64": "%%%", "mime_type": "image/png"}])],
    "a link": [HumanMessage(content=[{"type": "image", "url": "https://example.com/dog.png"}])],
    "two images": [HumanMessage(content=[image_block(world.render(DOG)), image_block(world.render(CAT))])],
    "a tool message": [HumanMessage(DRAW), ToolMessage("x", tool_call_id="1")],
    "two requests in a row": [HumanMessage(DRAW), HumanMessage(EDIT)],
    "ends with a reply": [HumanMessage(DRAW), AIMessage("ok")],
    "no messages": [],
    "an audio block": [HumanMessage(content=[{"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}])],
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_messages_are_one_sentence(llm, case):
    with pytest.raises(ChatgenError) as err:
        llm.invoke(BAD[case])
    e = err.value
    assert "\n" not in str(e) and e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)  # no chained traceback
    with pytest.raises(ChatgenError, match=re.escape(str(e))):
        list(llm.stream(BAD[case]))
    with pytest.raises(ChatgenError, match=re.escape(str(e))):
        asyncio.run(llm.ainvoke(BAD[case]))


@pytest.mark.parametrize("kwargs", [{"temperature": "hot"}, {"colour": "red"}, {"seed": -1}, {"stop": ["."]}, {"model": "/no/such/model"}])
def test_bad_parameters_are_one_sentence(llm, kwargs):
    with pytest.raises(ChatgenError) as err:
        llm.invoke(DRAW, **kwargs)
    assert "\n" not in str(err.value)


# ---- the tool and the README ------------------------------------------------------------------------
def test_the_tool_keeps_one_conversation_and_returns_errors_as_text(llm):
    tool = ChatGenTool(model=llm)
    assert "draw" in tool.description and tool.args == {"request": tool.args["request"]}
    call = {"type": "tool_call", "id": "c1", "name": "chatgen", "args": {"request": DRAW}}
    drawn = tool.invoke(call)
    edited = tool.invoke({**call, "id": "c2", "args": {"request": EDIT}})
    assert isinstance(edited, ToolMessage) and edited.tool_call_id == "c2" and "[a 96x96 picture]" in edited.content
    assert world.detect(reply_image(drawn.artifact)) == DOG and world.detect(reply_image(edited.artifact)) == CAT
    assert len(tool.messages) == 4
    failed = tool.invoke({**call, "id": "c3", "args": {"request": "  "}})
    assert failed.status == "error" and failed.content.startswith("the message is empty") and len(tool.messages) == 4


def test_readme_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Use it from LangChain") :]
    section = section[: section.index("\n## ", 1)]
    code = "\n".join(re.findall(r"```python\n(.*?)```", section, re.DOTALL))
    assert "ChatGenTool" in code and "chain.invoke" in code
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, "README.md (Use it from LangChain)", "exec"), ns)
    assert world.detect(Image.open(tmp_path / "cat.png")) == CAT
    assert Image.open(tmp_path / "tool-cat.png").size == (96, 96)
    assert world.detect(reply_image(ns["result"].artifact)) == CAT
