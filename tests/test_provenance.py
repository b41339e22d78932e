"""Provenance: reply PNGs carry their parameters, and with c2pa-python and a signing key a C2PA
manifest marking them AI-generated, with the edited picture as parent ingredient. The test makes
its own tiny CA and signing certificate (ES256) and verifies offline with c2pa's Reader."""

import datetime
import io
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from chatgen.assistant import Assistant
from chatgen.conversation import Message, Session
from chatgen.errors import ChatgenError
from chatgen.params import GenerationParams
from chatgen.provenance import TRAINED_ALGORITHMIC_MEDIA, Provenance, parent_image, read_manifest, reply_png

c2pa = pytest.importorskip("c2pa", reason="C2PA signing needs c2pa-python (pip install -e '.[c2pa]')")
pytest.importorskip("cryptography")


# ---- a tiny certificate authority -----------------------------------------------------------------------
def make_chain(folder, self_signed: bool = False) -> dict:
    """A CA and an end-entity signing certificate as C2PA wants them (digitalSignature, the
    emailProtection extended key usage, key identifiers), written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chatgen tests")])

    def usage(sign_certs: bool):
        return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False, key_cert_sign=sign_certs, crl_sign=sign_certs, encipher_only=False, decipher_only=False)

    def cert(subject, issuer, public, signing_key, ca: bool):
        b = x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public).serial_number(x509.random_serial_number())
        b = b.not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True).add_extension(usage(ca), critical=True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        if not ca:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False)
        return b.sign(signing_key, hashes.SHA256())

    def pem(c):
        return c.public_bytes(serialization.Encoding.PEM)

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert(name("chatgen test CA"), name("chatgen test CA"), ca_key.public_key(), ca_key, ca=True)
    leaf = cert(name("chatgen test signer"), name("chatgen test signer") if self_signed else ca.subject, key.public_key(), key if self_signed else ca_key, ca=False)
    paths = {"cert": folder / "chain.pem", "key": folder / "key.pem", "ca": folder / "ca.pem"}
    paths["cert"].write_bytes(pem(leaf) + (b"" if self_signed else pem(ca)))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    paths["ca"].write_bytes(pem(ca))
    return paths


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return make_chain(tmp_path_factory.mktemp("c2pa"))


@pytest.fixture()
def signing(backend, chain):
    return Assistant(backend, provenance=Provenance(chain["cert"], chain["key"]))


def image_reply(assistant, session, message):
    for seed in range(20):
        r = assistant.respond(session, message, GenerationParams(seed=seed, max_new_tokens=40))
        if r.image is not None:
            return r
        session.undo()
    raise AssertionError("no image in 20 seeds")


def actions(manifest: dict) -> list[dict]:
    return next(a["data"]["actions"] for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))


# ---- signing and verifying ----------------------------------------------------------------------------------
def test_an_edited_picture_is_signed_with_its_parent_as_ingredient(signing, chain):
    s = Session()
    first = image_reply(signing, s, "draw a dog on the grass")
    edit = image_reply(signing, s, "make the dog a cat")
    png = signing.reply_png(s, edit.turn)
    # 1. The manifest verifies: "Trusted" against the test's CA, "Valid" for anyone else.
    trusted = read_manifest(png, trust_anchors=chain["ca"].read_bytes())
    assert trusted["state"] == "Trusted" and trusted["failures"] == []
    plain = read_manifest(png)
    assert plain["state"] == "Valid" and plain["failures"] == []
    # 2. It marks the picture AI-generated, edited from its parent: the previous picture.
    m = trusted["manifest"]
    steps = actions(m)
    assert [a["action"] for a in steps] == ["c2pa.opened", "c2pa.edited"]
    assert steps[-1]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert [(i["relationship"], i["title"]) for i in m["ingredients"]] == [("parentOf", f"the picture of turn {first.turn_id}")]
    assert m["signature_info"]["common_name"] == "chatgen test signer"
    # 3. The file is still the same picture with its generation parameters.
    img = Image.open(io.BytesIO(png))
    assert img.tobytes() == edit.image.convert(img.mode).tobytes()
    assert json.loads(img.text["chatgen"])["seed"] == edit.metadata["seed"]


def test_a_new_picture_is_created_with_no_parent(signing):
    s = Session()
    r = image_reply(signing, s, "draw a dog on the grass")
    m = read_manifest(signing.reply_png(s, r.turn))
    assert m["state"] == "Valid"
    steps = actions(m["manifest"])
    assert [a["action"] for a in steps] == ["c2pa.created"] and steps[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert not m["manifest"].get("ingredients")


def test_an_upload_is_the_parent_of_its_edit(signing):
    s = Session()
    up = Image.new("RGB", (32, 32), (0, 150, 0))
    r = image_reply(signing, s, Message("make it a cat", image=up))
    assert parent_image(s, r.turn)[0] is r.turn.user_image
    m = read_manifest(signing.reply_png(s, r.turn))["manifest"]
    assert m["ingredients"][0]["title"] == f"the picture uploaded in turn {r.turn_id}"


def test_a_changed_picture_no_longer_validates(signing):
    s = Session()
    r = image_reply(signing, s, "draw a dog on the grass")
    png = bytearray(signing.reply_png(s, r.turn))
    start = png.index(b"IDAT") + 8  # a byte of the image data
    png[start] ^= 0xFF
    state = read_manifest(bytes(png))
    assert state["state"] == "Invalid" and "assertion.dataHash.mismatch" in state["failures"]


def test_without_signing_the_png_is_the_plain_one(assistant):
    s = Session()
    r = image_reply(assistant, s, "draw a dog on the grass")
    png = assistant.reply_png(s, r.turn)
    assert png == reply_png(s, r.turn) and read_manifest(png)["state"] is None
    assert "chatgen" in Image.open(io.BytesIO(png)).text


# ---- configuration errors, each one sentence --------------------------------------------------------------------
def test_bad_signing_settings_are_refused_at_start(chain, tmp_path):
    other = make_chain(tmp_path)
    with pytest.raises(ChatgenError, match="cannot sign with the C2PA certificate"):
        Provenance(chain["cert"], other["key"])  # a key that is not the certificate's
    with pytest.raises(ChatgenError, match="cannot read the C2PA signing key"):
        Provenance(chain["cert"], tmp_path / "missing.pem")
    with pytest.raises(ChatgenError, match="is not a PEM file"):
        (tmp_path / "junk.pem").write_text("hello")
        Provenance(chain["cert"], tmp_path / "junk.pem")
    with pytest.raises(ChatgenError, match="must be one of es256"):
        Provenance(chain["cert"], chain["key"], alg="md5")


def test_without_c2pa_python_signing_says_how_to_install(chain, monkeypatch):
    monkeypatch.setitem(sys.modules, "c2pa", None)  # import c2pa now fails
    with pytest.raises(ChatgenError, match="pip install c2pa-python"):
        Provenance(chain["cert"], chain["key"])


# ---- the front ends sign what they hand out -----------------------------------------------------------------------
def test_the_cli_signs_with_its_flags(capsys, tiny_dir, tmp_path, chain):
    from chatgen.cli import main

    out = tmp_path / "out.png"
    for seed in range(10):
        code = main(["generate", "a dog on the grass", "-o", str(out), "--model", str(tiny_dir), "--seed", str(seed), "--max-new-tokens", "40", "--c2pa-cert", str(chain["cert"]), "--c2pa-key", str(chain["key"])])
        if code == 0:
            break
    assert code == 0 and read_manifest(out.read_bytes())["state"] == "Valid"
    capsys.readouterr()
    assert main(["generate", "a dog", "-o", str(out), "--model", str(tiny_dir), "--c2pa-cert", str(chain["cert"])]) == 2
    assert "--c2pa-cert and --c2pa-key go together" in capsys.readouterr().err


def test_the_api_and_the_ui_hand_out_signed_pngs(signing, chain, tmp_path, monkeypatch):
    from chatgen.api import ChatAPI
    from chatgen.ui.handlers import ChatUI
    from chatgen.ui.state import UIState

    api = ChatAPI(signing, folder=tmp_path / "api")
    sid = api.new_session()
    for seed in range(20):
        _, path, info = api.chat(sid, "draw a dog on the grass", seed=seed)
        if path:
            break
        api.undo(sid)
    assert read_manifest(Path(path).read_bytes())["state"] == "Valid"
    assert read_manifest(Path(api.image(sid, info["turn_id"])).read_bytes())["state"] == "Valid"

    monkeypatch.setattr("chatgen.ui.state.FILES_ROOT", tmp_path / "ui-files")
    ui = ChatUI(signing)
    st = ui.state(UIState())
    s = st.session
    r = image_reply(signing, s, "draw a dog on the grass")
    shown = st.file(r.turn, "assistant_image")
    assert read_manifest(Path(shown).read_bytes())["state"] == "Valid"
    assert st.file(r.turn, "assistant_image") == shown  # written once per picture
