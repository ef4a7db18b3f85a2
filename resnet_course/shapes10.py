"""The Shapes-10 renderer: draws the course's offline dataset, all images of a batch at once.

Each shape is a signed distance function (SDF): for every pixel, the distance to the shape's
outline, negative inside and positive outside, in the shape's own unit frame (radius about 1).
Painting a shape is then one comparison per pixel, for a whole batch at once, with no drawing
library. :func:`resnet_course.data.make_shapes10` wraps the images into an ``ImageData``.

Tools tier: free to change (no notebook copies it), but a change changes the dataset, so the
book's results must be re-made (``make notebooks``).
"""

import math
from collections.abc import Callable

import torch
from torch import Tensor

# ---------------------------------------------------------------------------------------------


def _circle(x: Tensor, y: Tensor, r: float = 1.0) -> Tensor:
    return torch.hypot(x, y) - r


def _box(x: Tensor, y: Tensor, hx: float, hy: float) -> Tensor:
    qx, qy = x.abs() - hx, y.abs() - hy
    return torch.hypot(qx.clamp(min=0), qy.clamp(min=0)) + torch.maximum(qx, qy).clamp(max=0)


def _half_planes(x: Tensor, y: Tensor, lines: list[tuple[float, float, float]]) -> Tensor:
    """A convex polygon as the intersection of half-planes ``a*x + b*y <= c`` (``(a, b)`` unit)."""
    return torch.stack([a * x + b * y - c for a, b, c in lines]).amax(0)


def _regular_polygon(x: Tensor, y: Tensor, sides: int, inradius: float) -> Tensor:
    angles = [2 * math.pi * k / sides - math.pi / 2 for k in range(sides)]
    return _half_planes(x, y, [(math.cos(a), math.sin(a), inradius) for a in angles])


def _star(x: Tensor, y: Tensor) -> Tensor:
    # five points: the radius swings between 0.45 and 1.0 with the angle
    radius = 0.45 + 0.55 * torch.cos(2.5 * torch.atan2(y, x)).abs() ** 3
    return (torch.hypot(x, y) - radius) * 0.7  # 0.7: the outline is steeper than a circle's


def _heart(x: Tensor, y: Tensor) -> Tensor:
    y = y + 0.1  # centres the heart
    u, v = (x + y) / math.sqrt(2), (y - x) / math.sqrt(2)  # a square turned by 45 degrees
    lobes = torch.minimum(_circle(x + 0.39, y - 0.39, 0.55), _circle(x - 0.39, y - 0.39, 0.55))
    return torch.minimum(_box(u, v, 0.55, 0.55), lobes)


def _arrow(x: Tensor, y: Tensor) -> Tensor:
    shaft = _box(x + 0.35, y, 0.5, 0.15)
    # the head: a triangle with its base on x = 0.1 (1.1 high) and its tip at (0.9, 0)
    a, b = 0.55 / math.hypot(0.55, 0.8), 0.8 / math.hypot(0.55, 0.8)  # a slanted edge's normal
    head = _half_planes(x, y, [(-1, 0, -0.1), (a, b, 0.9 * a), (a, -b, 0.9 * a)])
    return torch.minimum(shaft, head)


SHAPES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "circle": lambda x, y: _circle(x, y, 0.8),
    "ring": lambda x, y: (torch.hypot(x, y) - 0.65).abs() - 0.2,
    "triangle": lambda x, y: _regular_polygon(x, y, 3, 0.45),
    "square": lambda x, y: _box(x, y, 0.7, 0.7),
    "star": _star,
    "cross": lambda x, y: torch.minimum(_box(x, y, 0.85, 0.22), _box(x, y, 0.22, 0.85)),
    "crescent": lambda x, y: torch.maximum(_circle(x, y, 0.85), -_circle(x - 0.5, y, 0.7)),
    "heart": _heart,
    "arrow": _arrow,
    "ell": lambda x, y: torch.minimum(_box(x + 0.5, y, 0.2, 0.8), _box(x, y + 0.6, 0.7, 0.2)),
}
"""Signed distance function of each Shapes-10 class, in the shape's own unit frame."""

SHAPES10_CLASSES = tuple(SHAPES)  # label k is the k-th shape


def _coverage(distance: Tensor, pixel: float) -> Tensor:
    """Fraction of each pixel inside the shape: an anti-aliased edge one pixel wide."""
    return (0.5 - distance / pixel).clamp(0, 1)


def _paint(canvas: Tensor, coverage: Tensor, colour: Tensor) -> Tensor:
    """Blends ``colour`` (N, 3) over ``canvas`` (N, 3, S, S) where ``coverage`` (N, S, S) says."""
    alpha = coverage.unsqueeze(1)
    return canvas * (1 - alpha) + colour[:, :, None, None] * alpha


def _uniform(n: int, low: float, high: float, g: torch.Generator, *shape: int) -> Tensor:
    return low + (high - low) * torch.rand(n, *shape, generator=g)


def _render_shapes(labels: Tensor, size: int, g: torch.Generator) -> Tensor:
    """Draws one Shapes-10 image per label, all at once.

    Args:
        labels: Class of each image.
        size: Height and width in pixels.
        g: The random generator every random choice comes from.

    Returns:
        Images in [0, 1], shaped ``(N, 3, size, size)``, float32.
    """
    n = len(labels)
    pixel = 2 / size  # the image spans [-1, 1] in both directions
    grid = (torch.arange(size) + 0.5) * pixel - 1
    gx, gy = grid.view(1, 1, size), grid.view(1, size, 1)

    # background: a dark gradient between two random colours (every channel at most 0.4)
    bg = _uniform(n, 0, 0.35, g, 3)
    bg_end = (bg + _uniform(n, -0.15, 0.15, g, 3)).clamp(0, 0.4)
    angle = _uniform(n, 0, 2 * math.pi, g)[:, None, None]
    t = 0.5 + 0.35 * (gx * angle.cos() + gy * angle.sin())
    canvas = bg[:, :, None, None] + (bg_end - bg)[:, :, None, None] * t.unsqueeze(1)

    # clutter: three thin straight lines, each drawn with probability 0.5, in mid-tones (every
    # channel 0.2 to 0.6): edges that are not the shape's, dimmer than the shape
    for _ in range(3):
        angle = _uniform(n, 0, math.pi, g)[:, None, None]
        offset = _uniform(n, -1, 1, g)[:, None, None]
        width = _uniform(n, 0.5, 1.0, g)[:, None, None] * pixel
        distance = (gx * angle.cos() + gy * angle.sin() - offset).abs() - width / 2
        drawn = (torch.rand(n, generator=g) < 0.5)[:, None, None]
        canvas = _paint(canvas, _coverage(distance, pixel) * drawn, _uniform(n, 0.2, 0.6, g, 3))

    # the shape: random size, aspect ratio, rotation and position, in a light colour (every
    # channel 0.6 to 1): always lighter than the background, whatever the colours
    scale = _uniform(n, 0.5, 0.8, g)[:, None, None]
    aspect = _uniform(n, -0.25, 0.25, g).exp()[:, None, None]
    angle = _uniform(n, 0, 2 * math.pi, g)[:, None, None]
    cx = _uniform(n, -1, 1, g)[:, None, None] * (1 - scale) * 0.8
    cy = _uniform(n, -1, 1, g)[:, None, None] * (1 - scale) * 0.8
    dx, dy = (gx - cx) / scale, (gy - cy) / scale
    x = (dx * angle.cos() + dy * angle.sin()) / aspect  # rotate into the shape's own frame
    y = (dy * angle.cos() - dx * angle.sin()) * aspect
    distance = torch.empty(n, size, size)
    for k, sdf in enumerate(SHAPES.values()):
        mine = labels == k
        distance[mine] = sdf(x[mine], y[mine]) * scale[mine]  # back to image units
    canvas = _paint(canvas, _coverage(distance, pixel), _uniform(n, 0.6, 1.0, g, 3))

    # sensor noise of a random strength
    noise = _uniform(n, 0.02, 0.08, g)[:, None, None, None]
    return (canvas + noise * torch.randn(canvas.shape, generator=g)).clamp(0, 1)


def render_split(size: int, image_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """``size`` Shapes-10 images, balanced labels, drawn 1000 at a time (fast: fits in cache)."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(size) % len(SHAPES10_CLASSES))[torch.randperm(size, generator=g)]
    images = torch.empty(size, 3, image_size, image_size, dtype=torch.uint8)
    for start in range(0, size, 1000):
        chunk = _render_shapes(labels[start : start + 1000], image_size, g)
        images[start : start + 1000] = (chunk * 255).round().to(torch.uint8)
    return images, labels
