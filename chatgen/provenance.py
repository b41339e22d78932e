"""Provenance of reply images: what made them, readable by anyone who has the file.

Every reply PNG carries its generation parameters (model, seed, sampling settings) in a PNG text
chunk named `chatgen` (`Turn.png_text`). With `c2pa-python` installed (pip install -e '.[c2pa]')
and a signing key and certificate configured (`Provenance(cert=..., key=...)`, or the flags
`--c2pa-cert PEM --c2pa-key PEM`), it also carries a signed C2PA manifest:

    claim generator  chatgen <version>
    actions          a new picture: c2pa.created, digitalSourceType trainedAlgorithmicMedia;
                     a picture drawn from another: c2pa.opened (the parent) + c2pa.edited,
                     digitalSourceType trainedAlgorithmicMedia
    ingredient       parentOf: the picture the turn started from, when there was one: the turn's
                     upload, else the newest picture earlier in the branch (the one the model
                     reads and edits; chatgen cannot tell a redraw from an edit, so a reply drawn
                     with a picture in context names that picture)

`reply_png(session, turn, provenance)` writes every reply PNG a person gets: the CLI's files, the
UI's images and downloads, the API's /chat and /image files and LangChain's image blocks (through
`Assistant.reply_png`). Session archives keep their plain PNGs (they restore pixels, not downloads).

The certificate: C2PA asks for an end-entity certificate signed by a CA, with the
digitalSignature key usage and an extended key usage such as emailProtection or documentSigning;
the PEM file holds it first, then its chain (tests/test_provenance.py makes such a chain). A
reader calls the manifest "Valid" when the signature and hashes check out, and "Trusted" only
when the chain ends in a root it trusts (`read_manifest(png, trust_anchors=...)`); c2pa-python
0.38 also signs with a self-signed certificate, which is then "Valid" but never "Trusted".
Nothing here uses the network unless a time-stamp authority (`tsa_url`) is given.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .conversation import Session, Turn
from .errors import ChatgenError
from .images import png_bytes

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"  # IPTC digital source type of AI-generated media
ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")  # what c2pa signs with
SIGN_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}  # no embedded thumbnails: a manifest of a few kB, not tens


def c2pa_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("c2pa") is not None


def _c2pa():
    try:
        import c2pa
    except ImportError:
        raise ChatgenError("signing images needs c2pa-python: pip install c2pa-python (or pip install -e '.[c2pa]')") from None
    return c2pa


@dataclass
class Provenance:
    """How reply images are signed with a C2PA manifest; checked (one test signature) when made."""

    cert: str | Path  # PEM file: the signing certificate first, then the CA certificates of its chain
    key: str | Path  # PEM file: the signing certificate's private key
    alg: str = "es256"  # the key's algorithm: es256/es384/es512 (EC P-256/384/521), ps256/ps384/ps512 (RSA-PSS) or ed25519
    tsa_url: str | None = None  # RFC 3161 time-stamp authority (None: no time stamp; a stamp needs the network)
    generator: str = "chatgen"  # the claim generator's name in the manifest
    _pem: tuple[bytes, bytes] = field(default=(b"", b""), init=False, repr=False)  # (certificate chain, key) as read

    def __post_init__(self):
        # 1. Check the arguments and read the two PEM files.
        self.alg = str(self.alg).lower()
        if self.alg not in ALGORITHMS:
            raise ChatgenError(f"the C2PA signing algorithm must be one of {', '.join(ALGORITHMS)}, got {self.alg!r}")
        pem = []
        for what, path in (("certificate", self.cert), ("key", self.key)):
            try:
                data = Path(path).expanduser().read_bytes()
            except OSError as e:
                raise ChatgenError(f"cannot read the C2PA signing {what} {path} ({type(e).__name__})") from None
            if b"-----BEGIN" not in data:
                raise ChatgenError(f"the C2PA signing {what} {path} is not a PEM file")
            pem.append(data)
        self._pem = (pem[0], pem[1])
        # 2. One test signature, so a key that does not match its certificate (or a certificate
        #    C2PA refuses) is reported when the server starts, not on the first picture.
        try:
            self.sign(png_bytes(Image.new("RGB", (8, 8))))
        except ChatgenError as e:
            raise ChatgenError(f"cannot sign with the C2PA certificate {self.cert} and key {self.key}: {e}") from None

    def sign(self, png: bytes, parent: bytes | None = None, parent_title: str = "the picture it was drawn from", title: str = "chatgen image") -> bytes:
        """`png` with a signed C2PA manifest marking it AI-generated; `parent` (PNG bytes), when
        given, is its parent ingredient (the picture it was edited from)."""
        c2pa = _c2pa()
        # 1. The manifest: what made the picture, and from what.
        agent = {"name": self.generator, "version": _version()}
        if parent is None:
            actions = [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": agent}]
        else:
            actions = [
                {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}},
                {"action": "c2pa.edited", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": agent},
            ]
        manifest = {"claim_generator_info": [agent], "title": title, "format": "image/png", "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}]}
        # 2. Sign: the manifest goes into the PNG (a caBX chunk); pixels and text chunks stay.
        try:
            signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(self.alg, self._pem[0], self._pem[1], self.tsa_url))
            builder = c2pa.Builder(manifest, c2pa.Context.from_dict(SIGN_SETTINGS))
            if parent is not None:
                builder.add_ingredient({"title": parent_title, "relationship": "parentOf", "label": "parent"}, "image/png", io.BytesIO(parent))
            out = io.BytesIO()
            builder.sign(signer, "image/png", io.BytesIO(png), out)
        except c2pa.C2paError as e:
            raise ChatgenError(f"C2PA signing failed ({' '.join(str(e).split())[:200]})") from None
        return out.getvalue()


def parent_image(session: Session | None, turn: Turn) -> tuple[Image.Image | None, str]:
    """(picture, title) the turn's reply image was drawn from: the turn's upload, else the newest
    picture earlier in its branch; (None, "") for a picture drawn from words alone."""
    if turn.user_image is not None:
        return turn.user_image, f"the picture uploaded in turn {turn.id}"
    if session is not None and turn.parent is not None and turn.parent in session.turns:
        for t in reversed(session.path(turn.parent)):
            if t.assistant_image is not None:
                return t.assistant_image, f"the picture of turn {t.id}"
            if t.user_image is not None:
                return t.user_image, f"the picture uploaded in turn {t.id}"
    return None, ""


def reply_png(session: Session | None, turn: Turn, provenance: Provenance | None = None) -> bytes:
    """The PNG of a turn's reply image: its generation parameters in a text chunk, and, with
    `provenance`, a signed C2PA manifest naming the picture it was drawn from as parent."""
    if turn.assistant_image is None:
        raise ChatgenError(f"turn {turn.id} has no reply image")
    png = png_bytes(turn.assistant_image, turn.png_text())
    if provenance is None:
        return png
    parent, title = parent_image(session, turn)
    return provenance.sign(png, png_bytes(parent) if parent is not None else None, parent_title=title, title=f"chatgen reply image of turn {turn.id}")


def read_manifest(png: bytes, trust_anchors: str | bytes | None = None) -> dict:
    """What a C2PA reader says about `png`: {"state": "Valid" / "Trusted" / "Invalid", "manifest":
    the active manifest, "failures": [codes]}; `trust_anchors` (PEM) are the roots to trust.
    A PNG without a manifest gives {"state": None, "manifest": None, "failures": []}."""
    c2pa = _c2pa()
    settings: dict = {"verify": {"verify_trust": trust_anchors is not None}}
    if trust_anchors is not None:
        settings["trust"] = {"user_anchors": trust_anchors.decode() if isinstance(trust_anchors, bytes) else trust_anchors}
    try:
        reader = c2pa.Reader("image/png", io.BytesIO(png), None, c2pa.Context.from_dict(settings))
    except c2pa.C2paError as e:
        if "ManifestNotFound" in type(e).__name__ or "no JUMBF" in str(e):
            return {"state": None, "manifest": None, "failures": []}
        raise ChatgenError(f"cannot read the C2PA manifest ({' '.join(str(e).split())[:200]})") from None
    results = reader.get_validation_results() or {}
    failures = [f["code"] for f in (results.get("activeManifest") or {}).get("failure", [])]
    return {"state": reader.get_validation_state(), "manifest": reader.get_active_manifest(), "failures": failures, "json": json.loads(reader.json())}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("chatgen")
    except Exception:  # not installed (a copied package, e.g. on a Space)
        return "0"
