import pytest
import torch

from chatgen.vocab import SPECIALS, JointVocab


def make():
    return JointVocab(text_size=100, codebook_size=50, grid_h=3, grid_w=4)


def test_ranges_do_not_overlap():
    v = make()
    assert v.image_offset == 100 + len(SPECIALS)
    assert v.size == v.image_offset + 50
    ids = set(range(v.size))
    text = {i for i in ids if v.is_text(i)}
    image = {i for i in ids if v.is_image(i)}
    special = {i for i in ids if v.special_name(i)}
    assert len(text) == 100 and len(image) == 50 and len(special) == len(SPECIALS)
    assert not (text & image or text & special or image & special)
    assert text | image | special == ids


def test_codes_round_trip_and_span_markers():
    v = make()
    codes = torch.randint(0, 50, (3, 4))
    ids = v.codes_to_ids(codes)
    assert ids[0] == v.boi and ids[-1] == v.eoi and len(ids) == 3 * 4 + 2
    assert all(v.is_image(i) for i in ids[1:-1])
    assert torch.equal(v.ids_to_codes(ids[1:-1]), codes)


def test_split_spans_separates_text_and_images():
    v = make()
    codes = torch.arange(12).reshape(3, 4)
    ids = [5, 6, *v.codes_to_ids(codes), 7, v.eot]
    text, images = v.split_spans(ids)
    assert text == [5, 6, 7]
    assert len(images) == 1 and torch.equal(v.ids_to_codes(images[0]), codes)


def test_bad_codes_are_refused():
    v = make()
    with pytest.raises(ValueError, match="shape"):
        v.codes_to_ids(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="codes must lie"):
        v.codes_to_ids(torch.full((3, 4), 50))
    with pytest.raises(ValueError, match="holds 12 codes"):
        v.ids_to_codes([v.image_offset] * 11)
    with pytest.raises(KeyError, match="unknown special"):
        v.special("<nope>")


def test_dict_round_trip():
    v = make()
    assert JointVocab.from_dict(v.to_dict()) == v
