"""Scenes and their pictures: what a MiniVQA image shows, and how it is drawn.

A *scene* is either a 2x2 grid of cells, each empty or holding one object (shape,
colour, size), or a *sign* showing a short word in a 3x5 pixel font. Images are 32x32
RGB; one grid cell is 16x16 pixels (2x2 vision patches), one letter sits in one 8x8 patch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 32
SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230), "yellow": (235, 210, 40)}
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right")
#: Normalised [x0, y0, x1, y1] box of each grid cell, as grounding answers write it.
CELL_BOXES = {
    "top left": "[0.0, 0.0, 0.5, 0.5]", "top right": "[0.5, 0.0, 1.0, 0.5]",
    "bottom left": "[0.0, 0.5, 0.5, 1.0]", "bottom right": "[0.5, 0.5, 1.0, 1.0]",
}
BACKGROUNDS = ((245, 245, 245), (225, 225, 210), (210, 225, 235))

# 3x5 glyphs, row by row; each letter is drawn in its own 8x8 patch so a patch sees one letter.
_GLYPHS = {
    "A": (".#.", "#.#", "###", "#.#", "#.#"), "B": ("##.", "#.#", "##.", "#.#", "##."),
    "C": ("###", "#..", "#..", "#..", "###"), "D": ("##.", "#.#", "#.#", "#.#", "##."),
    "E": ("###", "#..", "##.", "#..", "###"), "H": ("#.#", "#.#", "###", "#.#", "#.#"),
    "K": ("#.#", "#.#", "##.", "#.#", "#.#"), "L": ("#..", "#..", "#..", "#..", "###"),
    "O": ("###", "#.#", "#.#", "#.#", "###"), "T": ("###", ".#.", ".#.", ".#.", ".#."),
}
LETTERS = tuple(_GLYPHS)


def _glyph(letter: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in _GLYPHS[letter]], dtype=bool)


@dataclass(frozen=True)
class Obj:
    """One object in a grid cell."""

    shape: str
    colour: str
    size: str
    position: str

    @property
    def phrase(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """What an image shows: grid objects, or a sign's word (with its background colour)."""

    objects: tuple[Obj, ...] = ()
    word: str | None = None
    background: int = 0

    @property
    def kind(self) -> str:
        return "sign" if self.word is not None else "grid"

    def at(self, position: str) -> Obj | None:
        return next((o for o in self.objects if o.position == position), None)

    def caption(self) -> str:
        """The full description stage-1 alignment teaches the base model."""
        if self.word is not None:
            return f"a sign that says {self.word}."
        if not self.objects:
            return "an empty picture."
        return ", ".join(f"a {o.phrase} at the {o.position}" for o in self.objects) + "."


def random_scene(rng: np.random.Generator, *, sign_prob: float = 0.0) -> Scene:
    """A random grid scene (1-4 objects), or a sign with probability ``sign_prob``."""
    background = int(rng.integers(len(BACKGROUNDS)))
    if rng.random() < sign_prob:
        n = int(rng.integers(3, 5))
        return Scene(word="".join(rng.choice(LETTERS, size=n)), background=background)
    n = int(rng.integers(1, 5))
    cells = rng.choice(len(POSITIONS), size=n, replace=False)
    objs = tuple(
        Obj(shape=str(rng.choice(SHAPES)), colour=str(rng.choice(list(COLOURS))), size=str(rng.choice(SIZES)),
            position=POSITIONS[c])
        for c in sorted(cells)
    )
    return Scene(objects=objs, background=background)


#: One scene in this many (by content) is held out for the benchmarks.
EVAL_SLICE = 5


def reserved_for_eval(scene: Scene) -> bool:
    """Whether ``scene`` is in the benchmarks' held-out slice of scene space: a fifth of all scene
    contents (objects with their positions, or a sign's word; the background does not count), chosen
    by a hash. Benchmark pictures are drawn only from it and pool pictures never, so no pool picture
    shows a benchmark scene, however it is re-drawn (contamination control at the source)."""
    key = repr((scene.word, sorted((o.position, o.shape, o.colour, o.size) for o in scene.objects)))
    return hashlib.sha256(key.encode()).digest()[0] % EVAL_SLICE == 0


def split_scene(rng: np.random.Generator, *, sign_prob: float = 0.0, eval_side: bool = False) -> Scene:
    """A random scene from the benchmarks' slice (``eval_side``) or from the rest (the pool's)."""
    while True:
        scene = random_scene(rng, sign_prob=sign_prob)
        if reserved_for_eval(scene) == eval_side:
            return scene


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Draw ``scene`` as a 32x32x3 uint8 image (small jitter in position and colour)."""
    img = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.int16)
    img[:] = BACKGROUNDS[scene.background]
    if scene.word is not None:
        for k, letter in enumerate(scene.word):
            g = _glyph(letter)
            # Letter k fills patch column k (the last patch column holds the 4th letter, if any).
            y0, x0 = 9 + int(rng.integers(0, 3)), 8 * k + 2 + int(rng.integers(0, 3))
            img[y0:y0 + 5, x0:x0 + 3][g] = (20, 20, 20)
        return np.clip(img, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:16, 0:16]
    for o in scene.objects:
        row, col = POSITIONS.index(o.position) // 2, POSITIONS.index(o.position) % 2
        r = 6 if o.size == "large" else 3
        cy, cx = 8 + int(rng.integers(-1, 2)), 8 + int(rng.integers(-1, 2))
        if o.shape == "circle":
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif o.shape == "square":
            mask = (abs(yy - cy) <= r - 1) & (abs(xx - cx) <= r - 1)
        else:
            mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) * r / (2 * r) + 0.5)
        colour = np.array(COLOURS[o.colour]) + rng.integers(-15, 16, size=3)
        cell = img[16 * row:16 * row + 16, 16 * col:16 * col + 16]
        cell[mask] = colour
    return np.clip(img, 0, 255).astype(np.uint8)


def corrupt(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A defective picture: ``blank`` (one flat colour) or ``noise`` (random pixels)."""
    if kind == "blank":
        return np.full((IMAGE_SIZE, IMAGE_SIZE, 3), int(rng.choice([0, 128, 255])), dtype=np.uint8)
    return rng.integers(0, 256, size=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
