"""The README's "AugMix in your own training loop" example, run verbatim on tiny random batches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "### AugMix in your own training loop"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    blocks = re.findall(r"```python\n(.*?)```", text.split(SECTION, 1)[1].split("\n## ", 1)[0], flags=re.S)
    assert len(blocks) == 1, f"expected one python block under {SECTION!r}, found {len(blocks)}"
    return blocks[0]


@pytest.mark.parametrize("kind", ["uint8", "float"])
def test_readme_augmix_example_runs_as_written(kind):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=generator)
    if kind == "float":
        images = images.float() / 255  # a ToTensor batch
    labels = torch.randint(0, 10, (4,), generator=generator)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))
    before = [p.detach().clone() for p in model.parameters()]
    namespace = {"loader": [(images, labels)], "model": model,
                 "optimizer": torch.optim.SGD(model.parameters(), lr=0.1)}
    exec(compile(_example(), str(README), "exec"), namespace)
    views, loss, terms = namespace["views"], namespace["loss"], namespace["terms"]
    assert views.shape == (12, 3, 16, 16) and views.dtype == torch.float32
    unit = images.float() / 255 if kind == "uint8" else images
    assert torch.allclose(views[:4], unit * 2 - 1, atol=1e-6)  # the clean view, (x - 0.5) / 0.5
    assert torch.isfinite(loss) and set(terms) == {"ce", "jsd"} and terms["jsd"] > 0
    assert torch.allclose(loss, terms["ce"] + 12 * terms["jsd"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the step ran
