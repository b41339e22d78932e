"""`chatgen bench-refiner`: is the embedded refiner worth turning on?

On `n` held-out world scenes (seeds from 10,000,000 on, never trained on), each rendered at
96 px and passed through the model's VQ-VAE (the picture the chat shows), it compares against
the clean 384 px render (`world.render(scene, scale=4)`):

1. PSNR of the refiner's 384 px picture, and of PIL's bicubic upscale of the same decode
   (the gain is the difference, in dB; target >= 3; an identical picture counts 99 dB), and the
   share of refined pictures identical to the clean render;
2. whether the world detector reads the same scene from the refined picture as from the decode,
   and the true scene;
3. the refiner's time per picture (median and p95 over the scenes, one picture at a time, with
   the threads torch has: 2 on the build machine; target <= 1 s).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from PIL import Image

from .. import world
from ..embedded_refiner import FACTOR
from ..train.vq import psnr as vq_psnr

HELDOUT_SEED = world.HELDOUT_SEED  # scenes from here on are never trained on


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """dB, capped at 99 for identical pictures (so that a mean stays finite)."""
    return min(99.0, vq_psnr(a, b))


def measure_refiner(refine, image_tokenizer, n: int = 200, seed: int = HELDOUT_SEED) -> dict:
    """The figures of the module doc for `refine` (decode picture -> refined picture: a
    `chatgen.refiner.Refiner`'s `refine`, as a turn runs it) on `n` held-out scenes."""
    from ..train.refiner import scene_pairs

    scenes, decodes, clean = scene_pairs(image_tokenizer, n, seed)
    side = clean.shape[1]
    refined_db, bicubic_db, times, same_decode, same_truth, identical = [], [], [], 0, 0, 0
    for i, scene in enumerate(scenes):
        decode = Image.fromarray(decodes[i])
        t0 = time.perf_counter()
        refined = refine(decode)
        times.append(time.perf_counter() - t0)
        up = np.asarray(decode.resize((side, side), Image.Resampling.BICUBIC))
        refined_db.append(psnr(np.asarray(refined), clean[i]))
        identical += bool(np.array_equal(np.asarray(refined), clean[i]))
        bicubic_db.append(psnr(up, clean[i]))
        read = world.detect(refined)
        same_decode += read == world.detect(decode)
        same_truth += read == scene
    q = statistics.quantiles(times, n=20) if len(times) > 1 else times * 19
    return {
        "scenes": n, "side_px": side, "factor": FACTOR,
        "psnr_refined_db": round(statistics.mean(refined_db), 2),
        "psnr_bicubic_db": round(statistics.mean(bicubic_db), 2),
        "psnr_gain_db": round(statistics.mean(refined_db) - statistics.mean(bicubic_db), 2),
        "identical_to_clean": round(identical / n, 3),
        "detector_same_as_decode": round(same_decode / n, 3),
        "detector_same_as_scene": round(same_truth / n, 3),
        "seconds_median": round(statistics.median(times), 3),
        "seconds_p95": round(q[18], 3),
    }


def side_by_side(refine, image_tokenizer, seed: int = HELDOUT_SEED + 7) -> Image.Image:
    """One held-out scene as four 384 px panels: decode (nearest), bicubic, refined, clean."""
    from ..train.refiner import scene_pairs

    _, decodes, clean = scene_pairs(image_tokenizer, 1, seed)
    decode = Image.fromarray(decodes[0])
    side = clean.shape[1]
    panels = [decode.resize((side, side), Image.Resampling.NEAREST), decode.resize((side, side), Image.Resampling.BICUBIC),
              refine(decode), Image.fromarray(clean[0])]
    sheet = Image.new("RGB", (4 * side + 3 * 8, side), (255, 255, 255))
    for k, p in enumerate(panels):
        sheet.paste(p.convert("RGB"), (k * (side + 8), 0))
    return sheet
