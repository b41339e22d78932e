"""The joint vocabulary: text tokens, structural specials and image codes share one id space.

Layout of the ids (the Chameleon / Emu3 "early fusion" recipe):

    [0, text_size)                        sentencepiece text ids
    [text_size, text_size + n_specials)   structural specials (<boi>, <eoi>, roles, ...)
    [image_offset, image_offset + codebook_size)   VQ-VAE codes, one id per code

An image is `<boi>` followed by exactly grid_h * grid_w code ids in row-major order, then `<eoi>`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

# The structural special tokens, in id order. Their names are how the rest of the code refers to them.
SPECIALS: tuple[str, ...] = (
    "<bos>",        # start of a conversation
    "<system>",     # a system prompt follows
    "<user>",       # a user turn follows
    "<assistant>",  # an assistant turn follows
    "<eot>",        # end of a turn
    "<boi>",        # begin of image: exactly grid_h * grid_w codes follow
    "<eoi>",        # end of image
    "<mask>",       # a user mask follows (an image span whose codes are 0 = keep, 1 = change)
    "<pad>",        # padding for batched training
)


@dataclass(frozen=True)
class JointVocab:
    """Maps between text ids, special tokens and image codes in one id space."""

    text_size: int  # number of text ids (the sentencepiece vocabulary size)
    codebook_size: int  # number of VQ-VAE codes
    grid_h: int  # image code rows
    grid_w: int  # image code columns
    specials: tuple[str, ...] = field(default=SPECIALS)  # structural specials, in id order

    def __post_init__(self):
        for name in ("text_size", "codebook_size", "grid_h", "grid_w"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"JointVocab.{name} must be positive, got {getattr(self, name)}")
        missing = set(SPECIALS) - set(self.specials)
        if missing:
            raise ValueError(f"JointVocab.specials lacks {sorted(missing)}")

    # ---- sizes and ranges -------------------------------------------------------------------
    @property
    def special_offset(self) -> int:
        return self.text_size

    @property
    def image_offset(self) -> int:
        return self.text_size + len(self.specials)

    @property
    def size(self) -> int:
        """Total vocabulary size: the causal LM's embedding rows."""
        return self.image_offset + self.codebook_size

    @property
    def image_tokens(self) -> int:
        """Codes in one image span (grid_h * grid_w)."""
        return self.grid_h * self.grid_w

    def span_layout(self) -> tuple[int | None, ...]:
        """What stands at each position between `<boi>` and `<eoi>`: None for a code. Families
        that put fixed tokens inside a span (Emu3: a size header, end-of-row tokens) say so here."""
        return (None,) * self.image_tokens

    # ---- specials ---------------------------------------------------------------------------
    def special(self, name: str) -> int:
        """Id of a structural special, e.g. `vocab.special("<boi>")`."""
        try:
            return self.special_offset + self.specials.index(name)
        except ValueError:
            raise KeyError(f"unknown special token {name!r}; known: {', '.join(self.specials)}") from None

    @property
    def boi(self) -> int:
        return self.special("<boi>")

    @property
    def eoi(self) -> int:
        return self.special("<eoi>")

    @property
    def eot(self) -> int:
        return self.special("<eot>")

    @property
    def pad(self) -> int:
        return self.special("<pad>")

    def special_name(self, token_id: int) -> str | None:
        """Name of a special id, or None when the id is not a special."""
        i = token_id - self.special_offset
        return self.specials[i] if 0 <= i < len(self.specials) else None

    # ---- classification ---------------------------------------------------------------------
    def is_text(self, token_id: int) -> bool:
        return 0 <= token_id < self.text_size

    def is_image(self, token_id: int) -> bool:
        return self.image_offset <= token_id < self.size

    # ---- image codes <-> ids ----------------------------------------------------------------
    def codes_to_ids(self, codes: torch.Tensor) -> list[int]:
        """(grid_h, grid_w) codes -> the full span `<boi> c_0 ... c_{HW-1} <eoi>` as ids."""
        return [self.boi, *grid_to_ids(codes, self.image_offset, self.codebook_size, self.grid_h, self.grid_w), self.eoi]

    def ids_to_codes(self, ids: list[int] | torch.Tensor) -> torch.Tensor:
        """The H*W image ids of one span (no markers) -> (grid_h, grid_w) codes."""
        return ids_to_grid(ids, self.image_offset, self.codebook_size, self.grid_h, self.grid_w)

    def split_spans(self, ids: list[int]) -> tuple[list[int], list[list[int]]]:
        """Split a reply into its text ids and the code ids of each complete image span."""
        return split_spans(ids, self.boi, self.eoi, self.is_text)

    # ---- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["specials"] = list(self.specials)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "JointVocab":
        d = dict(d)
        d["specials"] = tuple(d.get("specials", SPECIALS))
        return cls(**d)


def split_spans(ids: list[int], boi: int, eoi: int, is_text) -> tuple[list[int], list[list[int]]]:
    """Text ids outside image spans (those `is_text` accepts), and the inner ids of every
    complete `boi ... eoi` span; shared by every family's vocabulary."""
    text, spans, current = [], [], None
    for t in ids:
        if t == boi:
            current = []
        elif t == eoi and current is not None:
            spans.append(current)
            current = None
        elif current is not None:
            current.append(t)
        elif is_text(t):
            text.append(t)
    return text, spans


def grid_to_ids(codes: torch.Tensor, offset: int, codebook_size: int, grid_h: int, grid_w: int) -> list[int]:
    """(grid_h, grid_w) codes -> their ids in row-major order (codes numbered from `offset`), checked."""
    if tuple(codes.shape) != (grid_h, grid_w):
        raise ValueError(f"codes must have shape ({grid_h}, {grid_w}), got {tuple(codes.shape)}")
    flat = codes.reshape(-1).long()  # (H*W,) row-major
    if flat.min() < 0 or flat.max() >= codebook_size:
        raise ValueError(f"codes must lie in [0, {codebook_size}), got [{int(flat.min())}, {int(flat.max())}]")
    return (flat + offset).tolist()


def ids_to_grid(ids, offset: int, codebook_size: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """The grid_h * grid_w code ids of one picture (codes numbered from `offset`) -> (grid_h, grid_w) codes."""
    t = torch.as_tensor(list(ids) if not torch.is_tensor(ids) else ids, dtype=torch.long)
    if t.numel() != grid_h * grid_w:
        raise ValueError(f"a picture holds {grid_h * grid_w} codes, got {t.numel()}")
    if bool(((t < offset) | (t >= offset + codebook_size)).any()):
        raise ValueError("ids_to_codes got an id outside the image codes")
    return (t - offset).reshape(grid_h, grid_w)  # (H, W)
