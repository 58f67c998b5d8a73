"""What a prompt may say: the demo model's closed grammar (shared/shapes_world.md), the 7B's
free text with its template, and the length cap for both. Qt-free.

    problem = prompt_problem("t2v", text, demo=True)   # None, or one line saying what is wrong
    scene = scene_caption(timeline, clip_id)           # the caption an extend continues
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.demo.captions import (
    CaptionError,
    edit_spec,
    parse_caption,
    parse_instruction,
)
from engine.demo.world import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES, EditError

MAX_PROMPT_CHARS = 2000  # the 7B reads at most 256 tokens; the demo 23 words
CAPTION_EXAMPLE = "a small red circle moves left on a black background"
INSTRUCTION_EXAMPLE = "remove the red circle"


@dataclass(frozen=True)
class Vocabulary:
    """The demo grammar's words, in the order the spec lists them."""

    sizes: tuple[str, ...] = tuple(SIZES)
    colours: tuple[str, ...] = tuple(COLOURS)
    shapes: tuple[str, ...] = SHAPES
    motions: tuple[str, ...] = MOTIONS
    backgrounds: tuple[str, ...] = tuple(BACKGROUNDS)

    def summary(self) -> str:
        """One line per word class (for tooltips and the picker)."""
        return "\n".join(
            f"{name}: {', '.join(words)}"
            for name, words in (
                ("Colours", self.colours),
                ("Shapes", self.shapes),
                ("Sizes", self.sizes),
                ("Motions", self.motions),
                ("Backgrounds", self.backgrounds),
            )
        )


VOCABULARY = Vocabulary()


def normalise(text: str) -> str:
    """What the demo's tokenizer reads: lower case, single spaces, a final '.' dropped."""
    return " ".join(text.lower().strip().removesuffix(".").split())


def is_instruction(mode: str) -> bool:
    return mode == "v2v"


def prompt_problem(mode: str, text: str, demo: bool) -> str | None:
    """None when `text` is a prompt the model takes in `mode`, else one line saying why not.

    Empty text is a problem too ("Type ..."). For the demo, t2v / i2v / extend take a caption
    and v2v an edit instruction; the 7B takes any text up to MAX_PROMPT_CHARS."""
    if len(text) > MAX_PROMPT_CHARS:
        return f"too long: {len(text):,} characters (at most {MAX_PROMPT_CHARS:,})"
    if not text.strip():
        return "Type an edit instruction" if is_instruction(mode) else "Type a prompt"
    if not demo:
        return None
    words = normalise(text)
    try:
        if is_instruction(mode):
            parse_instruction(words)
        else:
            parse_caption(words)
    except CaptionError as exc:
        example = INSTRUCTION_EXAMPLE if is_instruction(mode) else CAPTION_EXAMPLE
        what = "an edit instruction" if is_instruction(mode) else "a caption"
        reason = _short(str(exc))
        return f"{reason[:1].upper()}{reason[1:]}: not {what} the demo knows, e.g. '{example}'"
    return None


def next_words(mode: str, before: str) -> list[str]:
    """The demo words that may come next after `before` (the text up to the cursor, whole words
    only) so that the text can still become a valid caption (or, in Edit mode, instruction)."""
    words = normalise(before)
    candidates = [w for w in _grammar_words() if _valid_prefix(mode, f"{words} {w}".strip())]
    return candidates


def unfinished(mode: str, text: str) -> bool:
    """Whether `text` is not yet a whole demo prompt but could still become one (typing goes on)."""
    words = normalise(text)
    return (
        bool(words)
        and prompt_problem(mode, text, demo=True) is not None
        and _valid_prefix(mode, words)
    )


def _grammar_words() -> tuple[str, ...]:
    from engine.demo.text import BOS, PAD, TASK_WORDS, grammar_vocab

    return tuple(w for w in grammar_vocab() if w not in (PAD, BOS, *TASK_WORDS))


def _valid_prefix(mode: str, text: str) -> bool:
    """Whether `text` is a whole prompt or the start of one (the parser stops at its end)."""
    try:
        (parse_instruction if is_instruction(mode) else parse_caption)(text)
    except CaptionError as exc:
        return "got the end" in str(exc)
    return True


def _short(message: str) -> str:
    """A parser message without the quoted text it already names ('... in 'a red ...'')."""
    head, sep, _tail = message.partition(" in '")
    return head if sep else message


def describe(mode: str, text: str, demo: bool) -> str:
    """The one-line verdict the inspector shows under the prompt."""
    problem = prompt_problem(mode, text, demo)
    if problem is not None:
        return problem
    if not demo:
        return f"{len(text):,} / {MAX_PROMPT_CHARS:,} characters"
    return "A valid edit instruction" if is_instruction(mode) else "A valid caption"


def template_preview(caption: str, fps: int, width: int, height: int, mode: str = "t2v") -> str:
    """The 7B's prompt as its text encoder reads it (the reference template), on one line."""
    from engine.starflow_v.text import format_prompt

    ratio = _aspect(width, height)
    text = format_prompt(caption or "{prompt}", fps=fps, aspect_ratio=ratio, mode=mode)
    return " ".join(text.split())


def _aspect(width: int, height: int) -> str:
    known = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0, "4:3": 4 / 3, "3:4": 3 / 4}
    return min(known, key=lambda k: abs(known[k] - width / max(height, 1)))


# ---- the caption an extend continues ---------------------------------------------------------------


def scene_caption(timeline, clip_id: str | None, depth: int = 0) -> str:
    """The caption of what a clip shows: its own prompt for a text / image to video clip or an
    extend; for an edit, its source's scene with the instruction applied (the demo grammar), or
    the source's caption when the edit cannot be read that way (free text). "" when unknown."""
    clip = timeline.clip(clip_id)
    if clip is None or clip.request is None or depth > 32:
        return ""
    r = clip.request
    if r.mode != "v2v":
        return r.prompt
    source = _source_clip(timeline, r.source.media) if r.source is not None else None
    before = scene_caption(timeline, source, depth + 1) if source else ""
    if not before:
        return ""
    try:
        return edit_spec(parse_caption(normalise(before)), normalise(r.prompt)).text()
    except (CaptionError, EditError):
        return before


def _source_clip(timeline, media_id: str) -> str | None:
    """A clip showing `media_id` that has a request (the clip an edit was made from)."""
    return next(
        (c.id for c in timeline.clips if c.media == media_id and c.request is not None), None
    )
