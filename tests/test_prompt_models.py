"""The Qt-free prompt models (issue 32): the demo grammar check, the scene an extend continues,
the prompt history, the draft's rules for a typed prompt and its seed, and start-image crops."""

from __future__ import annotations

import numpy as np
import pytest

from app.images import fit_image
from app.state.draft import Draft
from app.state.jobs import Job, JobQueue
from app.state.prompt_grammar import MAX_PROMPT_CHARS, prompt_problem, scene_caption
from app.state.prompt_history import PromptHistory
from app.state.request import ClipRequest, SourceRef
from app.state.timeline import Clip, Timeline, new_id
from engine.api import EngineError

CAPTION = "a large red circle moves right and a small green square stays still on a gray background"


@pytest.mark.parametrize(
    ("mode", "text", "ok"),
    [
        ("t2v", CAPTION, True),
        ("t2v", "A red circle moves left on a navy background.", True),  # as the tokenizer reads
        ("t2v", "background red circle a on moves", False),
        ("t2v", "a red circle moves left", False),  # no background
        (
            "t2v",
            "a red circle moves left and a red square stays still on a black background",
            False,
        ),
        ("i2v", "remove the red circle", False),
        ("v2v", "remove the red circle", True),
        ("v2v", CAPTION, False),
        ("extend", CAPTION, True),
    ],
)
def test_the_demo_grammar_is_checked_per_mode(mode, text, ok):
    problem = prompt_problem(mode, text, demo=True)
    assert (problem is None) == ok, problem
    if not ok:
        example = "remove the red circle" if mode == "v2v" else "a small red circle moves left"
        assert example in problem and "\n" not in problem


def test_free_text_has_only_the_length_cap():
    assert prompt_problem("v2v", "Make the sky pink", demo=False) is None
    assert "too long" in prompt_problem("t2v", "x" * (MAX_PROMPT_CHARS + 1), demo=False)
    record = ClipRequest("t2v", "background red circle a on moves", demo_grammar=True)
    with pytest.raises(EngineError, match="not a caption"):
        record.engine_request()
    ClipRequest("t2v", "background red circle a on moves").engine_request()  # the 7B: any text


def add(t: Timeline, record: ClipRequest | None) -> Clip:
    media = t.add_media(np.zeros((4, 48, 64, 3), np.uint8), "generated", "x")
    clip = Clip(new_id("c"), media.id, 0, 4, "x", record)
    t.insert(len(t.clips), clip)
    return clip


def test_an_edits_scene_is_its_sources_caption_with_the_edit_applied():
    t = Timeline()
    source = add(t, ClipRequest("t2v", CAPTION))
    ref = SourceRef(source.media, 0, 4)
    removed = add(t, ClipRequest("v2v", "remove the red circle", source=ref))
    assert scene_caption(t, removed.id) == "a small green square stays still on a gray background"
    ref2 = SourceRef(removed.media, 0, 4)
    recoloured = add(t, ClipRequest("v2v", "make the green square blue", source=ref2))
    assert scene_caption(t, recoloured.id) == "a small blue square stays still on a gray background"
    free = add(t, ClipRequest("v2v", "make it rain", source=ref))
    assert scene_caption(t, free.id) == CAPTION  # free text: the source's caption
    t.remove(source.id)
    assert scene_caption(t, removed.id) == ""  # the source is gone
    assert scene_caption(t, add(t, None).id) == ""  # imported video


def test_a_typed_prompt_survives_selection_and_the_seed_moves_only_by_its_mode():
    d = Draft(seed=5)
    d.type_prompt("my caption")
    d.set(clip="c1", mode="v2v", prompt="make it blue", seed=9, guidance=3.0)
    assert (d.prompt, d.mode, d.seed, d.guidance) == ("my caption", "t2v", 5, 3.0)
    d.set(prompt="")  # not typed: a selection fills it
    d.set(clip="c2", mode="v2v", prompt="make it blue")
    assert (d.prompt, d.mode) == ("make it blue", "v2v")
    d.sent(ClipRequest(seed=5))
    assert d.seed == 5  # fixed
    d.set(seed_mode="next")
    for seed in (5, 6, 7):  # three takes, seeds in a row
        d.sent(ClipRequest(seed=seed))
    assert d.seed == 8
    d.sent(ClipRequest(seed=3))  # another seed (a regenerate): the field stays
    assert d.seed == 8
    with pytest.raises(ValueError):
        d.set(takes=0)


def test_history_is_the_projects_prompts_then_this_sessions():
    t, jobs = Timeline(), JobQueue()
    d = Draft()
    history = PromptHistory(d, t, jobs)
    add(t, ClipRequest("t2v", "first"))
    record = ClipRequest("t2v", "second")
    d.type_prompt("second")
    jobs.add(Job(record, ClipRequest("t2v", "second").engine_request(), "Text: second"))
    assert not d.typed  # queued: no longer unsent
    history.stash("draft")
    assert history.entries() == ["first", "second", "draft"]
    d.type_prompt("now")
    assert [history.recall(-1) for _ in range(4)] == ["draft", "second", "first", None]
    assert [history.recall(1) for _ in range(4)] == ["second", "draft", "now", None]


def test_a_start_image_can_be_cropped_from_either_side_or_shown_whole():
    image = np.zeros((90, 160, 3), np.uint8)
    image[:, :20] = 255  # a white left edge
    image[:, -20:] = 128  # a gray right edge
    start, end, fit = (fit_image(image, 64, 48, c) for c in ("start", "end", "fit"))
    assert start[24, 0].max() == 255 and start[24, -1].max() == 0
    assert end[24, 0].max() == 0 and end[24, -1].max() == 128
    assert fit[0].max() == 0 and fit[24, 0].max() == 255 and fit[24, -1].max() == 128
    tall = np.zeros((1_000_000, 1, 3), np.uint8)  # an extreme shape: only the kept part is resized
    assert fit_image(tall, 64, 48, "start").shape == (48, 64, 3)


def test_completion_offers_only_words_that_keep_the_text_valid():
    from app.state.prompt_grammar import next_words

    assert next_words("t2v", "") == ["a"]
    assert next_words("t2v", "a red circle moves") == ["left", "right", "up", "down"]
    assert next_words("t2v", "a red circle moves left") == ["and", "on"]
    assert next_words("t2v", "a red circle moves left on a navy background") == []
    assert next_words("v2v", "make the red") == ["circle", "square", "triangle"]


def test_an_unfinished_caption_is_told_apart_from_a_wrong_one():
    from app.state.prompt_grammar import unfinished

    assert unfinished("t2v", "a red circle moves left on a")
    assert not unfinished("t2v", "background red circle a on moves")
    assert not unfinished("t2v", "a red circle moves left on a navy background")  # whole
    assert unfinished("v2v", "make the red")
