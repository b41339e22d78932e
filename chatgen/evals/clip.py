"""Optional embedding similarities: CLIP-T, CLIP-I and a DINO-style score, from one CLIP checkpoint.

`--clip PATH` names a folder (or Hub id) that `transformers.CLIPModel` and `CLIPProcessor`
load with `from_pretrained`. Per reply image:

* clip_t: cosine of the projected image and text embeddings, the text being the expected
  caption (the world's canonical description of the pinned scene, else the user's message);
* clip_i: cosine of the projected embeddings of the reply and the expected (pinned) picture,
  as MagicBrush/EMU-Edit score against the target image;
* dino_style: cosine of the vision tower's final [CLS] features (before projection) of the
  same two pictures: the DINO metric's recipe on CLIP's encoder (no DINO checkpoint needed).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from chatgen.errors import ChatgenError
from chatgen.safe_weights import safetensors_folder


class ClipScorer:
    """A CLIP model and its processor behind three similarity scores."""

    def __init__(self, model, processor):
        self.model = model.eval()  # transformers.CLIPModel
        self.processor = processor  # transformers.CLIPProcessor (tokenizer + image processor)
        self.max_text = model.config.text_config.max_position_embeddings  # tokens the text tower takes

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "ClipScorer":
        from transformers import CLIPModel, CLIPProcessor

        p = Path(path)
        if not p.is_dir() and (p.exists() or str(path).startswith(("/", ".", "~"))):
            raise ChatgenError(f"no CLIP checkpoint at {path}: expected a folder with a CLIPModel and its processor")
        try:
            model = CLIPModel.from_pretrained(str(safetensors_folder(path, "CLIP model")), use_safetensors=True)
            processor = CLIPProcessor.from_pretrained(str(path))
        except ChatgenError:
            raise
        except Exception as e:  # missing files, offline, wrong model type: one line
            raise ChatgenError(f"cannot load a CLIP model and processor from {path} ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
        return cls(model, processor)

    @torch.no_grad()
    def image_features(self, images: list[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """(projected, cls) features, each (N, D) and unit length."""
        pixels = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        out = self.model.vision_model(pixel_values=pixels)
        cls_tok = out.last_hidden_state[:, 0]  # (N, Dv)
        proj = self.model.visual_projection(out.pooler_output)  # (N, D)
        return _unit(proj), _unit(cls_tok)

    @torch.no_grad()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        """Projected text features, (N, D) and unit length."""
        tok = self.processor.tokenizer(texts, padding=True, truncation=True, max_length=self.max_text, return_tensors="pt")
        out = self.model.text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        return _unit(self.model.text_projection(out.pooler_output))  # (N, D)

    def scores(self, image: Image.Image, caption: str | None = None, target: Image.Image | None = None) -> dict[str, float]:
        """clip_t (with a caption), clip_i and dino_style (with a target picture)."""
        images = [image] + ([target] if target is not None else [])
        proj, cls_tok = self.image_features(images)
        out: dict[str, float] = {}
        if caption:
            out["clip_t"] = float(proj[0] @ self.text_features([caption])[0])
        if target is not None:
            out["clip_i"] = float(proj[0] @ proj[1])
            out["dino_style"] = float(cls_tok[0] @ cls_tok[1])
        return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)
