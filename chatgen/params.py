"""The sampling settings of one reply, checked once, and their transformers `GenerationConfig`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformers import GenerationConfig

from .errors import ChatgenError


@dataclass
class GenerationParams:
    """Sampling settings of one reply."""

    seed: int | None = None  # RNG seed; None picks one (and the reply records it)
    temperature: float = 1.0  # 0 = greedy
    top_k: int = 50  # keep the k most likely tokens (0 = off); 50 is what transformers' generate always applied when it was left unset
    top_p: float = 1.0  # nucleus sampling mass (1 = off)
    cfg_scale: float = 1.0  # classifier-free guidance inside image spans (1 = off)
    max_new_tokens: int = 512  # reply length cap, image codes included
    max_text_tokens: int = 128  # cap on the reply's text outside images (the longest trained reply is under 100)
    previews: bool = True  # decode a partial image after every finished code row
    jacobi: int = 16  # speculative Jacobi decoding of image spans: draft codes verified per forward pass (0 = off; greedy output unchanged)
    lookup: int = 5  # prompt-lookup drafts for text tokens (n-grams of the conversation): draft tokens verified per forward pass (0 = off; the tokens are unchanged, greedy or seeded)

    def check(self) -> "GenerationParams":
        """Raise a one-line error naming the first bad field."""
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ChatgenError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not self.temperature >= 0:
            raise ChatgenError(f"temperature must be >= 0, got {self.temperature}")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            raise ChatgenError(f"top_k must be a non-negative integer, got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ChatgenError(f"top_p must be in (0, 1], got {self.top_p}")
        if not self.cfg_scale >= 0:
            raise ChatgenError(f"cfg_scale must be >= 0, got {self.cfg_scale}")
        if not (isinstance(self.max_new_tokens, int) and self.max_new_tokens >= 1):
            raise ChatgenError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if not (isinstance(self.max_text_tokens, int) and self.max_text_tokens >= 1):
            raise ChatgenError(f"max_text_tokens must be a positive integer, got {self.max_text_tokens!r}")
        if not (isinstance(self.jacobi, int) and 0 <= self.jacobi <= 1024):
            raise ChatgenError(f"jacobi must be an integer window in 0..1024 (0 = off), got {self.jacobi!r}")
        if not (isinstance(self.lookup, int) and 0 <= self.lookup <= 1024):
            raise ChatgenError(f"lookup must be an integer draft count in 0..1024 (0 = off), got {self.lookup!r}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def generation_config(self, base: GenerationConfig | None, eos_token_id: int, pad_token_id: int) -> GenerationConfig:
        """The checkpoint's own generation config (`generation_config.json`) with these settings on top."""
        config = GenerationConfig.from_dict(base.to_dict()) if base is not None else GenerationConfig()
        sampling = {"do_sample": True, "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p} if self.temperature > 0 else {"do_sample": False, "temperature": None, "top_k": None, "top_p": None}
        config.update(max_new_tokens=self.max_new_tokens, eos_token_id=eos_token_id, pad_token_id=pad_token_id, return_dict_in_generate=True, **sampling)
        return config
