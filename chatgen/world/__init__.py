"""The synthetic scene world the embedded model is trained and evaluated on.

96x96 pictures: one of 6 backgrounds and up to 4 emoji sprites on a 3x3 grid of 32 px
slots. `scene` holds the data model, `render` draws it, `detect` reads it back from an
image, `phrasing` and `dialogue` write the conversations about it.
"""

from chatgen.world.detect import Detection, detect, detect_slots, slot_accuracy
from chatgen.world.dialogue import (
    ASK_KINDS, DEFAULT_BACKGROUND, EDIT_KINDS, KINDS, Dialogue, DTurn, Edit, State,
    generate_dialogue, generate_edit_chain, generate_questions, generate_turn_of_kind, generate_unambiguous_edit,
    next_turn, possible_kinds, scene_for_kind,
)
from chatgen.world.phrasing import (
    OUT_OF_WORLD, answer_question, describe, draw_reply, out_of_world_reply,
)
from chatgen.world.render import background_tile, contact_sheet, render, render_array, sprite
from chatgen.world.scene import (
    BACKGROUNDS, CANVAS_PX, CATEGORIES, CLASSES, COLS, DEFAULT_SLOTS, GRID, MAX_OBJECTS,
    MAX_PER_CLASS, ROWS, SLOT_PX, Obj, Scene, random_scene, slot_name, slot_phrase, slots_of,
)

__all__ = [
    "ASK_KINDS", "BACKGROUNDS", "CANVAS_PX", "CATEGORIES", "CLASSES", "COLS", "DEFAULT_BACKGROUND",
    "DEFAULT_SLOTS", "Detection", "Dialogue", "DTurn", "EDIT_KINDS", "Edit", "GRID", "KINDS",
    "MAX_OBJECTS", "MAX_PER_CLASS", "OUT_OF_WORLD", "Obj", "ROWS", "SLOT_PX", "Scene", "State",
    "answer_question", "background_tile", "contact_sheet", "describe", "detect", "detect_slots",
    "draw_reply", "generate_dialogue", "generate_edit_chain", "generate_questions", "generate_turn_of_kind",
    "generate_unambiguous_edit", "next_turn",
    "out_of_world_reply", "possible_kinds", "random_scene", "render", "render_array", "scene_for_kind",
    "slot_accuracy", "slot_name", "slot_phrase", "slots_of", "sprite",
]
