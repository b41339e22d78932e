"""One turn end to end: check the message, build the prompt, stream the reply, refine.

`Assistant.stream(session, message)` is the single entry point every front end uses (UI, CLI,
API, LangChain, evals), and the one place where a message and its parameters are checked.
It never changes the session: the final `Reply` carries the new `Turn`, and the caller stores
it with `session.append(reply.turn)` (`respond` does that for scripts). Bad input raises at the
call, before anything is generated; a cancelled reply carries no turn.

Optional hooks: `safety` (`chatgen.safety`) refuses a prompt at the check and withholds a reply
picture its classifier flags; `provenance` (`chatgen.provenance`) signs the reply PNGs that
`reply_png` writes for the front ends; `refiner` (`chatgen.refiner`) redraws the reply picture
with a diffusion pass: the turn shows and saves the refined picture and keeps the model's own
image tokens, so the next turn's prompt is the same with the refiner on or off.

A reply picture whose codes equal the picture it started from (the latest image of the
conversation, or this message's upload) changed nothing, whatever its text says ("Done: removed
the fish." with no fish there): the turn keeps one sentence saying so (`UNCHANGED`) and no
picture, so the reply never claims a change the picture does not show, and later turns read
the truth. A backend that reads pictures (`Backend.reads_pictures`: the embedded model, through
its scene reader) also checks what a done edit's text says against the pictures before and
after ("Done: removed the fish and the bear." with no fish there): a contradicted reply keeps
the backend's one true sentence instead, again with no picture. Likewise a text answer about
the picture ("There is one animal." next to two, "No, the cat is on the right." to "is the cat
on the right?") keeps the answer the picture supports (`Backend.check_answer`); the model's
words stay in the turn's metadata (`corrected_answer`). And a masked edit's reply is checked
against what the painted part holds (`Backend.check_request`): "There is nothing in the part you
painted" over a cat is answered again, "Done: the cat is now a dog." when the painted cell holds
a rabbit is drawn again after "Done: the rabbit is now a dog.", an edit over an empty painted
place keeps the world's honest sentence; "add a bird above the house" answered with a bird
elsewhere is drawn again after "Done: added a bird <above the house>." (metadata
`first_reply`: the first reply).

Before any of that, the reply's text is read against the message as soon as it is whole, before
its picture is drawn or the text is shown (`Backend.text_faults`, `chatgen.reply_fit`): a text
that does not fit ("Here is a star ..." for "one cloud", "Hello!" to "so there are three clouds
now?", an edit for "what's right above the car?") is mended where the words make the mend plain
(`Backend.mend_text`: the asked background, only the changes asked for, the thing's name said
back, a relative question answered from the picture), else replaced by the text the model itself
samples most often among those that fit better (`chatgen.replan`); the reply goes on after that
text (metadata `replanned`: the first text, its faults, how many texts were sampled).
"""

from __future__ import annotations

import functools
import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import torch
from PIL import Image

from .backends.base import Backend
from .conversation import Message, Session, Turn
from .errors import ChatgenError
from .events import Event, ImageDone, ImageRow, ReplyDone, TextDelta
from .images import check_mask_fits, read_image
from .edit_claims import MISSED, Redo, Say
from .mask_claims import REFUSALS
from .params import GenerationParams
from .provenance import Provenance, reply_png
from .replan import Plan, better_plan
from .safety import Safety
from .text import clean_text


# The reply that replaces a picture identical to the one it started from (see the module doc).
UNCHANGED = "Nothing changed: the picture came out exactly as it was before."


@dataclass
class Reply:
    """What the assistant answered in one turn."""

    text: str  # the reply text (may be empty when the reply is an image only)
    image: Image.Image | None  # the reply image, if any
    turn: Turn | None  # the new turn, for the caller to append; None when the reply was cancelled
    cancelled: bool = False  # stopped before the end; nothing is to be stored
    metadata: dict = field(default_factory=dict)  # model, seed, parameters, timings, token counts

    @property
    def turn_id(self) -> str | None:
        return self.turn.id if self.turn is not None else None



@dataclass
class Request:
    """A checked turn request: what `Assistant.run` generates from."""

    message: Message  # the normalised message (stripped text, RGB image, 'L' mask)
    params: GenerationParams  # the turn's parameters over the defaults, checked, seed picked


class Assistant:
    """A backend (+ optional refiner, safety hooks and image signing) behind one `stream` call."""

    def __init__(self, backend: Backend, refiner=None, params: GenerationParams | None = None, safety: Safety | None = None, provenance: Provenance | None = None):
        self.backend = backend  # the joint-vocabulary model
        self.refiner = refiner  # optional: a `chatgen.refiner.Refiner` (streams RefineStep previews) or any object with .refine(image, prompt) -> image
        self.params = params or GenerationParams()  # defaults for every turn
        self.safety = safety  # optional: a prompt filter and an output-image classifier (chatgen.safety); None: nothing is filtered
        self.provenance = provenance  # optional: signs reply PNGs with a C2PA manifest (chatgen.provenance); None: parameters only

    def with_refiner(self, refiner) -> "Assistant":
        """The same assistant (model, defaults, safety, signing) with another refiner (None: without one)."""
        return Assistant(self.backend, refiner, self.params, safety=self.safety, provenance=self.provenance)

    def reply_png(self, session: Session | None, turn: Turn) -> bytes:
        """The PNG file of a turn's reply image as people get it: its generation parameters in a
        text chunk and, when signing is configured, a C2PA manifest (`chatgen.provenance`)."""
        return reply_png(session, turn, self.provenance)

    # ---- checks ------------------------------------------------------------------------------
    def check_message(self, session: Session, message: Message | str) -> Message:
        """Normalise and check a message; raises ChatgenError with one sentence.

        1. Text: cleaned and capped in characters (`clean_text`).
        2. Upload and mask: PIL images only (front ends read files), re-read through `read_image`;
           the mask needs an image and must have its shape.
        3. The whole message must fit the model's context in tokens.
        4. The safety prompt filter, when one is configured (`chatgen.safety`)."""
        if isinstance(message, str):
            message = Message(text=message)
        if not isinstance(message, Message):
            raise ChatgenError(f"message must be text or a Message, got {type(message).__name__}")
        # 1. Text.
        text = clean_text(message.text)
        # 2. Upload and mask.
        for what, img in (("uploaded image", message.image), ("mask", message.mask)):
            if img is not None and not isinstance(img, Image.Image):
                raise ChatgenError(f"the {what} must be a PIL image, got {type(img).__name__}")
        image = read_image(message.image, "uploaded image") if message.image is not None else None
        if not text and image is None:
            raise ChatgenError("the message is empty: type a request or attach an image")
        mask = None
        if message.mask is not None:
            target = image if image is not None else session.last_image()
            if target is None:
                raise ChatgenError("a mask needs an image to edit: draw or upload one first")
            mask = read_image(message.mask, "mask", mask=True)
            check_mask_fits(mask, target.size)
            if mask.getextrema()[1] == 0:
                raise ChatgenError("the mask is empty: paint the region the edit may change")
        # 3. Tokens.
        b = self.backend
        n = len(b.encode_user(Message(text))) + (b.vocab.image_tokens + 2 if image is not None else 0)
        room = b.message_room(session)
        if n > room:
            raise ChatgenError(f"the message is {n:,} tokens long and this model reads at most {max(room, 0):,} in one message, so shorten it")
        # 4. Safety.
        if self.safety is not None:
            self.safety.check_prompt(text)
        return Message(text=text, image=image, mask=mask)

    def merge_params(self, params: GenerationParams | dict | None) -> GenerationParams:
        """This turn's parameters over the assistant's defaults, checked, with a seed picked."""
        if params is None:
            p = replace(self.params)
        elif isinstance(params, dict):
            unknown = set(params) - set(GenerationParams.__dataclass_fields__)
            if unknown:
                raise ChatgenError(f"unknown generation parameter {sorted(unknown)[0]!r}")
            p = replace(self.params, **params)
        else:
            p = replace(params)
        p.check()
        if p.seed is None:
            p.seed = random.randrange(2**31)
        return p

    # ---- one turn ----------------------------------------------------------------------------
    def prepare(self, session: Session, message: Message | str, params: GenerationParams | dict | None = None) -> Request:
        """Check a message and its parameters: the one place inputs are checked (one-sentence errors)."""
        return Request(self.check_message(session, message), self.merge_params(params))

    def stream(self, session: Session, message: Message | str, params: GenerationParams | dict | None = None, cancel: threading.Event | None = None) -> Iterator[Event | Reply]:
        """Check the inputs now (a bad one raises here, at the call), then return the turn's
        stream: the backend's events as they come, then the final `Reply` (the last item)."""
        return self.run(session, self.prepare(session, message, params), cancel)

    def run(self, session: Session, request: Request, cancel: threading.Event | None = None) -> Iterator[Event | Reply]:
        """Generate the reply to a checked request (see `stream`)."""
        message, p = request.message, request.params
        t0 = time.perf_counter()
        # 1. An upload the model cannot read is answered in one sentence, without generating.
        why = self.backend.unreadable(message.image) if message.image is not None else None
        if why is not None:
            yield from self._unreadable_upload(session, message, p, why, t0)
            return
        # 2. Build the prompt; a mask turns into a per-code keep grid over the edited image.
        prompt = self.backend.prompt(session, message)
        if message.mask is not None:
            prompt.source_codes = self._source_codes(session, message)
            prompt.keep = ~self.backend.edit_cells(message.mask)
        prep_s = time.perf_counter() - t0
        # 3. Generate, passing every event through (with an image classifier on, a picture is
        #    shown only once it passed: no previews; ImageDone waits for the check). ReplyDone
        #    waits for the refiner, so that it carries the picture the turn keeps. A turn the backend
        #    may redo (`Backend.redoes`: a masked edit, a place relative to another thing, a group, a
        #    drawing of things at named places) is held until its reply is checked against what was
        #    asked (`Backend.check_request`): a reply that misjudged it is answered again (after the
        #    done text that fits, or not allowed to start with a refusal), or replaced by the honest
        #    sentence that fits.
        screened = self.safety is not None and self.safety.image_classifier is not None
        checked = self.backend.redoes(message.text, message.mask)
        #    The reply's text is read against the message before anything after it is shown
        #    (`Backend.text_faults`, for a backend that reads pictures): a text that does not fit
        #    ("Here is a star ..." for "one cloud") is replaced by the model's own sampled text that
        #    fits best (`replan.better_plan`), and the reply goes on after that one.
        start_codes = functools.cache(lambda: self._start_codes(session, message, prompt))  # (H, W) or None
        before = functools.cache(lambda: self.backend.decode_image(start_codes()) if start_codes() is not None else None)  # the picture it started from, decoded once if a check reads it
        plan = functools.partial(self._plan, session, message, prompt, p, cancel, before) if self.backend.reads_pictures else None
        done, held = yield from self._generate(prompt, p, cancel, screened, hold=checked, plan=plan)
        start = start_codes() if self.backend.reads_pictures or (done.image is not None and not done.cancelled) else None
        said = model_said = None
        if checked and not done.cancelled:
            verdict = self.backend.check_request(done.text, message.text, message.mask, before(), done.image)
            if isinstance(verdict, Say):
                said, model_said = verdict.text, done.text
                done = replace(done, image=None)
            elif isinstance(verdict, Redo):
                model_said = done.text
                forced = self.backend.encode_text(verdict.text) if verdict.text else []
                banned = () if verdict.text else tuple({self.backend.encode_text(r)[0] for r in REFUSALS})
                if verdict.text:
                    yield TextDelta(verdict.text)
                done, held = yield from self._generate(replace(prompt, ids=prompt.ids + forced, banned_first=banned), p, cancel, screened, hold=False)
                if forced:
                    done = replace(done, text=verdict.text + done.text, reply_ids=[*forced, *done.reply_ids])
        # 4. Refine the image (optional): RefineStep events while it runs (no previews when
        #    screened); Stop while refining cancels the turn. The turn keeps the model's own ids.
        #    A picture equal to the one it started from is not refined: it is replaced (step 5).
        image, refine_s, cancelled = done.image, 0.0, done.cancelled
        unchanged = image is not None and not cancelled and start is not None and self._same_picture(start, done.reply_ids)
        #    So is a picture that contradicts what the text says was done (`Backend.check_edit`:
        #    "Done: removed the fish." with no fish before), for a backend that reads pictures.
        contradicted = corrected = None
        #    An unchanged picture whose text names a thing that was not there gets the sentence for that
        #    ("There is no bicycle in the picture, ..."), which says more than "Nothing changed".
        if image is not None and not cancelled and self.backend.reads_pictures:
            contradicted = self.backend.check_edit(done.text, before(), image)
            contradicted = None if unchanged and contradicted == MISSED else contradicted
        #    A text answer is checked against the picture it is about (`Backend.check_answer`).
        if image is None and not cancelled and self.backend.reads_pictures and start is not None:
            corrected = self.backend.check_answer(done.text, message.text, before())
        refined = image is not None and self.refiner is not None and not cancelled and not unchanged and contradicted is None
        if refined:
            t1 = time.perf_counter()
            if hasattr(self.refiner, "stream"):
                out = yield from self.refiner.stream(image, message.text, seed=p.seed, cancel=cancel, previews=not screened)
            else:  # any object with .refine(image, prompt) -> image
                out = self.refiner.refine(image, message.text)
            refine_s = time.perf_counter() - t1
            if out is None:
                cancelled = True
            else:
                image = out
        # 5. Safety: a flagged picture is withheld; the reply says so in one sentence. So is a
        #    picture identical to the one it started from (it changed nothing), or one whose
        #    change the text misstates (the sentence of `check_edit`).
        withheld = self.safety.check_image(image) if self.safety is not None and image is not None and not unchanged and contradicted is None else None
        metadata = {
            "model": self.backend.name,
            "params": p.to_dict(),
            "seed": p.seed,
            "timings": {"prepare_s": round(prep_s, 4), "generate_s": done.stats.get("total_s"), "first_token_s": done.stats.get("first_token_s"), "refine_s": round(refine_s, 4), "total_s": round(time.perf_counter() - t0, 4)},
            "tokens": {k: done.stats[k] for k in ("prompt_tokens", "cached_tokens", "new_tokens", "image_tokens", "image_passes") if done.stats.get(k) is not None},
        }
        if refined and not cancelled:
            metadata["refiner"] = self.refiner.describe() if hasattr(self.refiner, "describe") else {"name": type(self.refiner).__name__}
        if withheld is not None:
            metadata["withheld_image"] = withheld
        if unchanged:
            metadata["unchanged_picture"] = True
            withheld = UNCHANGED
        if contradicted is not None:
            metadata["contradicted_claim"] = done.text  # what the model said; the turn keeps `contradicted`
            withheld = contradicted
        if corrected is not None:
            metadata["corrected_answer"] = done.text  # what the model said; the turn keeps `corrected`
            withheld = corrected
        if model_said is not None:
            metadata["first_reply"] = model_said  # the model's reply before `check_request`
        if done.stats.get("replanned") is not None:
            metadata["replanned"] = done.stats["replanned"]  # the first text, what it showed, and how many were sampled
        if said is not None:
            withheld = said
        for ev in held:  # the events that waited for the checks; a withheld picture is in none of them
            if withheld is None:
                yield ev
        # ReplyDone with the picture the turn keeps (the refined one), or the sentence that withholds it
        yield replace(done, text=withheld, image=None, cancelled=cancelled) if withheld is not None else replace(done, image=image, cancelled=cancelled)
        if cancelled:
            yield Reply(text=done.text, image=None if withheld else image, turn=None, cancelled=True, metadata=metadata)
            return
        if withheld is not None:  # the turn holds the sentence only: no picture, no image tokens for later turns to read
            turn = self._new_turn(session, message, withheld, None, prompt.user_ids, [*self.backend.encode_text(withheld), self.backend.vocab.eot], p, metadata)
            yield Reply(text=withheld, image=None, turn=turn, metadata=metadata)
            return
        # 6. The new turn, for the caller to store; the reply's ids always end with <eot>.
        reply_ids = list(done.reply_ids)
        if not reply_ids or reply_ids[-1] != self.backend.vocab.eot:
            reply_ids.append(self.backend.vocab.eot)
        turn = self._new_turn(session, message, done.text, image, prompt.user_ids, reply_ids, p, metadata)
        yield Reply(text=done.text, image=image, turn=turn, metadata=metadata)

    def respond(self, session: Session, message: Message | str, params: GenerationParams | dict | None = None, cancel: threading.Event | None = None, on_event: Callable[[Event], None] | None = None) -> Reply:
        """Run one turn to the end, store its turn in `session` (unless cancelled) and return the reply."""
        for item in self.stream(session, message, params, cancel):
            if isinstance(item, Reply):
                if item.turn is not None:
                    session.append(item.turn)
                return item
            if on_event is not None:
                on_event(item)
        raise RuntimeError("the reply stream ended without a Reply")

    # ---- helpers -----------------------------------------------------------------------------
    def _unreadable_upload(self, session: Session, message: Message, p: GenerationParams, why: str, t0: float) -> Iterator[Event | Reply]:
        """The reply to an upload the model cannot read: `why`, and a turn whose ids leave the
        picture out, so later turns are not read against codes that mean nothing."""
        b = self.backend
        yield TextDelta(why)
        metadata = {"model": b.name, "params": p.to_dict(), "seed": p.seed, "unreadable_upload": True, "timings": {"total_s": round(time.perf_counter() - t0, 4)}}
        turn = self._new_turn(session, message, why, None, b.encode_user(Message(message.text)), [*b.encode_text(why), b.vocab.eot], p, metadata)
        yield Reply(text=why, image=None, turn=turn, metadata=metadata)

    def _new_turn(self, session: Session, message: Message, text: str, image: Image.Image | None, user_ids: list[int], reply_ids: list[int], p: GenerationParams, metadata: dict) -> Turn:
        """The turn a reply adds after the session's head, with the ids the next prompt reuses."""
        return Turn(
            id=session.new_turn_id(),
            parent=session.head,
            user_text=message.text,
            user_image=message.image,
            user_mask=message.mask,
            assistant_text=text,
            assistant_image=image,
            user_ids=user_ids,
            reply_ids=reply_ids,
            token_model=self.backend.name,
            params={**p.to_dict(), "metadata": metadata},
        )

    def _generate(self, prompt, p: GenerationParams, cancel, screened: bool, hold: bool, plan: Callable[[str], Plan | None] | None = None):
        """Stream one reply of the backend: its events are yielded as they come (`hold`: kept in
        the returned list instead, for the caller to pass on once the reply is checked; with
        `screened`, ImageDone is always kept and rows carry no previews). With `plan`, the text is
        held until it is whole and given to `plan`: a `Plan` it returns replaces it, and the reply
        goes on after the plan's text. Returns (ReplyDone, kept)."""
        done: ReplyDone | None = None
        held: list[Event] = []
        # The first reply gets a stop signal of its own when its text may be replaced: closing it then
        # must not stop the reply that goes on after the chosen text (a Stop of the caller still reaches it).
        first = threading.Event() if plan is not None else cancel
        stream, texts, forced, chosen = self.backend.stream(prompt, p, cancel=first), [], [], None
        while True:
            if first is not cancel and cancel is not None and cancel.is_set():
                first.set()
            ev = next(stream, None)
            if plan is not None and isinstance(ev, TextDelta):
                texts.append(ev)  # the text so far, shown once it is whole and fits
                continue
            if plan is not None:  # the text is whole: an image starts, or the reply ended
                chosen, plan = plan("".join(t.text for t in texts)), None
                if chosen is not None:
                    stream.close()  # stops the first reply
                    forced = self.backend.encode_text(chosen.text)
                    stream, texts = self.backend.stream(replace(prompt, ids=prompt.ids + forced), p, cancel=cancel), [TextDelta(chosen.text)]
                if hold:
                    held.extend(texts)
                else:
                    yield from texts
                if chosen is not None:
                    continue
            if ev is None:
                break
            if isinstance(ev, ReplyDone):
                done = ev
                continue
            ev = replace(ev, preview=None) if screened and isinstance(ev, ImageRow) else ev
            if hold or (screened and isinstance(ev, ImageDone)):
                held.append(ev)
                continue
            yield ev
        if done is None:
            raise RuntimeError(f"{type(self.backend).__name__}.stream ended without ReplyDone")
        if chosen is not None:
            done = replace(done, text=chosen.text + done.text, reply_ids=[*forced, *done.reply_ids],
                           stats={**done.stats, "replanned": {"first": chosen.first, "faults": chosen.faults, "sampled": chosen.sampled, "count": chosen.count}})
        return done, held

    def _plan(self, session: Session, message: Message, prompt, p: GenerationParams, cancel, picture: Callable[[], Image.Image | None], text: str) -> Plan | None:
        """Another text of the model to go on after when `text` does not fit the message (see `run`)."""
        turns = session.path()
        context = {"message": message.text, "picture": picture(), "before": turns[-1].user_text if turns else ""}
        faults_of = functools.partial(self.backend.text_faults, mask=message.mask is not None, **context)
        return better_plan(text, faults_of, self.backend, prompt, p, cancel, mend=functools.partial(self.backend.mend_text, **context))

    def _start_codes(self, session: Session, message: Message, prompt) -> torch.Tensor | None:
        """Codes of the picture a reply started from (the upload, else the latest image; a masked
        edit's prompt holds them already), or None when there is none."""
        if message.image is None and session.latest_image()[0] is None:
            return None
        return prompt.source_codes if prompt.source_codes is not None else self._source_codes(session, message)

    def _same_picture(self, old: torch.Tensor, reply_ids: list[int]) -> bool:
        """Whether the reply's picture has exactly the codes `old` of the picture it started from."""
        _, spans = self.backend.vocab.split_spans(list(reply_ids))
        if not spans:
            return False
        new = self.backend.vocab.ids_to_codes(spans[-1])
        return new.shape == old.shape and bool(torch.equal(new.cpu(), old.cpu()))

    def _source_codes(self, session: Session, message: Message) -> torch.Tensor:
        """Codes of the image a masked edit starts from: the upload, else the latest image."""
        b = self.backend
        if message.image is not None:
            return b.encode_image(message.image)
        turn, kind = session.latest_image()
        if turn is None:
            raise ChatgenError("a mask needs an image to edit: draw or upload one first")
        if kind == "assistant_image" and turn.token_model == b.name and b.stored_ids_ok(turn):
            _, spans = b.vocab.split_spans(turn.reply_ids)
            if spans:
                return b.vocab.ids_to_codes(spans[-1])
        return b.encode_image(getattr(turn, kind))

