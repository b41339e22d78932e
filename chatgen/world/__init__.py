"""The synthetic scene world the embedded model is trained and evaluated on.

96x96 pictures: one of 6 backgrounds and up to 4 emoji sprites on a 3x3 grid of 32 px
slots. `scene` holds the data model, `render` draws it, `detect` reads it back from an
image. The conversations about it: `dialogue` (turns and their kinds), `edits` (what an
edit changes), `turn_makers` (one turn of each kind), `generators` (whole dialogues),
`replies` (the assistant's canonical texts), `user_phrasing` and `message_style` (how users
word and type their messages), `people_turns` and `people_words` (how people talk once a
conversation is going: "it", several edits at once, all/both, relative places, yes/no), `masked_turns` (edits of the part the person painted).
"""

from chatgen.world.detect import Detection, detect, detect_slots, slot_accuracy, world_reader
from chatgen.world.dialogue import ASK_KINDS, EDIT_KINDS, HONEST_KINDS, KINDS, Dialogue, WorldTurn
from chatgen.world.edits import Edit
from chatgen.world.generators import (
    generate_dialogue, generate_edit_chain, generate_edits_then_questions, generate_questions, generate_turn_of_kind, generate_unambiguous_edit,
    scene_for_kind,
)
from chatgen.world.masked_turns import MASK_KINDS, generate_masked_dialogue, generate_masked_turn
from chatgen.world.message_style import style
from chatgen.world.people_turns import PEOPLE_KINDS, generate_people_dialogue
from chatgen.world.render import background_tile, render, render_array
from chatgen.world.replies import NUMBERS, answer_question, describe, draw_reply, out_of_world_reply
from chatgen.world.scene import (
    BACKGROUNDS, CANVAS_PX, CATEGORIES, CLASSES, COLS, DEFAULT_SLOTS, GRID, HELDOUT_SEED, MAX_OBJECTS,
    MAX_PER_CLASS, ROWS, SLOT_PX, Obj, Scene, random_scene, slot_name, slot_phrase, slots_of,
)
from chatgen.world.turn_makers import DEFAULT_BACKGROUND, State, next_turn, possible_kinds
from chatgen.world.user_phrasing import OUT_OF_WORLD, say_question

__all__ = [
    "ASK_KINDS", "BACKGROUNDS", "CANVAS_PX", "CATEGORIES", "CLASSES", "COLS", "DEFAULT_BACKGROUND",
    "DEFAULT_SLOTS", "Detection", "Dialogue", "EDIT_KINDS", "Edit", "GRID", "HELDOUT_SEED", "HONEST_KINDS", "KINDS",
    "MASK_KINDS", "MAX_OBJECTS", "MAX_PER_CLASS", "NUMBERS", "OUT_OF_WORLD", "Obj", "PEOPLE_KINDS", "ROWS", "SLOT_PX", "Scene", "State",
    "WorldTurn", "answer_question", "background_tile", "describe", "detect", "detect_slots",
    "draw_reply", "generate_dialogue", "generate_edit_chain", "generate_edits_then_questions", "generate_questions", "generate_turn_of_kind",
    "generate_masked_dialogue", "generate_masked_turn", "generate_people_dialogue", "generate_unambiguous_edit", "next_turn",
    "out_of_world_reply", "possible_kinds", "random_scene", "render", "render_array", "say_question",
    "scene_for_kind", "slot_accuracy", "slot_name", "slot_phrase", "slots_of", "style", "world_reader",
]
