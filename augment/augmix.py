"""AugMix on whole batches: every sample draws its own chains, levels, signs and mixing weights, on any device.

Follows google-research/augmix ``aug()`` as specified in docs/augmix.md §3: k chains of 1-3 ops
on uint8 images, each normalised, mixed with Dirichlet(alpha) weights, then blended with the clean image by
m ~ Beta(alpha, alpha) in float32. The ops (augment/ops.py) reproduce Pillow pixel for pixel; the PIL
backend (augment/pil_reference.py) is the per-image reference that ``build_augmix("pil", ...)`` returns.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from augment.ops import Fill, apply_ops, apply_ops_grouped, check_fill
from augment.params import LEVEL_LOW, OPS_WITH_SIGN, op_list, op_magnitude

MAX_DEPTH = 3            # depth -1 draws uniformly from {1, 2, 3} per chain (§3.1)
GAMMA_ROUNDS = 16        # Marsaglia-Tsang proposals per draw; all rejected has probability < 1e-20
BACKENDS = ("tensor", "pil")
STRATEGIES = ("auto", "fused", "grouped")
# Elements (B * K * 3 * H * W) per chunk of samples: bounds the float64 warp temporaries (about 8 bytes x 10 per
# element on a GPU) while keeping kernels large enough to fill the device.
CHUNK_ELEMENTS = {"cpu": 2**22, "cuda": 2**26}
CIFAR_MEAN = CIFAR_STD = (0.5, 0.5, 0.5)  # the official CIFAR script's Normalize (§3.4)


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype = torch.float32
              ) -> Tensor:
    """ToTensor + Normalize on a batch: (B, C, H, W) uint8 -> (B, C, H, W) ``dtype``, same device.

    Same float32 operations as torchvision (``x.float().div(255)``, then ``sub(mean).div(std)``), so the
    values equal the PIL backend's; the cast to ``dtype`` comes last.
    """
    def column(values: Sequence[float]) -> Tensor:  # torch.full: no host-to-device copy
        return torch.stack([torch.full((), v, dtype=torch.float32, device=images.device) for v in values])

    # In place (one fresh buffer, not three). 255 as a device tensor: CUDA divides by a Python number as x * (1/255),
    # which can differ from the CPU's (and torchvision's) true division in the last bit.
    x = images.float().div_(column((255.0,)))
    return x.sub_(column(mean).view(-1, 1, 1)).div_(column(std).view(-1, 1, 1)).to(dtype)


def log_gamma_sample(alpha: float, shape: Sequence[int], generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """log X for X ~ Gamma(alpha, 1), float64, from generator-driven uniforms and normals (torch has none).

    alpha = 1: X = -log(1 - U), an exponential. alpha > 1: Marsaglia-Tsang (2000) with GAMMA_ROUNDS
    vectorised proposals per draw, keeping the first accepted one. alpha < 1: X = Gamma(alpha + 1) U^(1/alpha),
    done in log space so that tiny values do not underflow to 0. Sync-free: no data-dependent control flow.
    """
    if alpha <= 0:
        raise ValueError(f"Gamma concentration alpha must be > 0; got {alpha}")
    shape = tuple(shape)
    uniform = lambda: torch.rand(shape, dtype=torch.float64, generator=generator, device=device)  # [0, 1)
    if alpha == 1.0:
        return torch.log(-torch.log1p(-uniform()))
    boost = alpha < 1.0
    a = alpha + 1.0 if boost else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    z = torch.randn(shape + (GAMMA_ROUNDS,), dtype=torch.float64, generator=generator, device=device)
    u = torch.rand(shape + (GAMMA_ROUNDS,), dtype=torch.float64, generator=generator, device=device)
    v = (1.0 + c * z) ** 3
    log_v = torch.log(v.clamp_min(torch.finfo(torch.float64).tiny))
    accept = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * v + d * log_v)
    first = accept.to(torch.uint8).argmax(-1, keepdim=True)  # index of the first accepted proposal
    log_x = (math.log(d) + log_v).gather(-1, first).squeeze(-1)
    log_x = torch.where(accept.any(-1), log_x, math.log(d))  # never taken in practice (see GAMMA_ROUNDS)
    if boost:
        log_x = log_x + torch.log1p(-uniform()) / alpha  # log U with U in (0, 1]
    return log_x


def dirichlet_sample(alpha: float, shape: Sequence[int], k: int, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """Dirichlet(alpha, ..., alpha) of length k per entry of ``shape``: (*shape, k) float64 summing to 1."""
    return torch.softmax(log_gamma_sample(alpha, tuple(shape) + (k,), generator, device), dim=-1)


def beta_sample(alpha: float, shape: Sequence[int], generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Tensor:
    """Beta(alpha, alpha) = G1 / (G1 + G2): (*shape) float64 in (0, 1)."""
    log_g = log_gamma_sample(alpha, tuple(shape) + (2,), generator, device)
    return torch.sigmoid(log_g[..., 0] - log_g[..., 1])


@dataclass(frozen=True)
class ChainDraws:
    """Every random number of one AugMix view per sample (§3.1), on the images' device.

    B samples, K chains, D = maximum depth op slots per chain. Draws are made for every slot; slots past a
    chain's depth and levels/signs of ops without them are simply unused, which leaves each sample's
    distribution exactly that of the reference.
    """

    weights: Tensor   # (B, K) float32, Dirichlet(alpha) chain weights
    skip: Tensor      # (B,) float32, m ~ Beta(alpha, alpha): the weight of the mixture (1 - m on the clean image)
    depth: Tensor     # (B, K) int64 in 1..D, ops applied per chain
    op_index: Tensor  # (B, K, D) int64 into the op list
    level: Tensor     # (B, K, D) float64 in [0.1, severity), redrawn for every op call
    negate: Tensor    # (B, K, D) bool, sign flip of signed ops (probability 0.5)


def sample_draws(batch: int, ops: Sequence[str], severity: int, width: int = 3, depth: int = -1,
                 alpha: float = 1.0, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> ChainDraws:
    """Draw every random number of one AugMix view for each of ``batch`` samples, independently per sample."""
    slots = depth if depth > 0 else MAX_DEPTH
    shape = (batch, width, slots)
    weights = dirichlet_sample(alpha, (batch,), width, generator, device).float()
    skip = beta_sample(alpha, (batch,), generator, device).float()
    if depth > 0:
        depths = torch.full((batch, width), depth, dtype=torch.int64, device=device)
    else:
        depths = torch.randint(1, MAX_DEPTH + 1, (batch, width), generator=generator, device=device)
    op_index = torch.randint(len(ops), shape, generator=generator, device=device)
    level = LEVEL_LOW + (severity - LEVEL_LOW) * torch.rand(shape, dtype=torch.float64, generator=generator,
                                                            device=device)  # NumPy's uniform(low, high)
    negate = torch.rand(shape, dtype=torch.float64, generator=generator, device=device) > 0.5
    return ChainDraws(weights, skip, depths, op_index, level, negate)


def chain_params(draws: ChainDraws, ops: Sequence[str], height: int, width: int) -> Tensor:
    """Signed op parameters from levels and signs, (B, K, D) float64 (0 for ops without one).

    translate_x uses ``width`` and translate_y ``height`` as the reference's IMAGE_SIZE (equal for its square
    crops); every other formula is augment/params.op_magnitude applied to the float64 levels.
    """
    params = torch.zeros_like(draws.level)
    for k, name in enumerate(ops):
        size = height if name == "translate_y" else width
        magnitude = op_magnitude(name, draws.level, size)
        if magnitude is None:
            continue
        if name in OPS_WITH_SIGN:
            magnitude = torch.where(draws.negate, -magnitude, magnitude)
        params = torch.where(draws.op_index == k, magnitude, params)
    return params


def _compiled_or_eager(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``torch.compile(fn)``, falling back to ``fn`` with one warning where compilation is unavailable or fails."""
    try:
        compiled = torch.compile(fn, dynamic=False)
    except Exception as err:  # e.g. no compiler toolchain, unsupported Python
        warnings.warn(f"torch.compile unavailable ({err!r}); AugMix runs eagerly", RuntimeWarning, stacklevel=3)
        return fn
    state = {"fn": compiled}

    def call(*args, **kwargs) -> Tensor:
        try:
            return state["fn"](*args, **kwargs)
        except Exception as err:
            if state["fn"] is fn:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {err}); AugMix runs eagerly",
                          RuntimeWarning, stacklevel=2)
            state["fn"] = fn
            return fn(*args, **kwargs)

    return call


class AugMix(nn.Module):
    """Per-sample AugMix on a uint8 batch, returning normalised float views (the tensor backend).

    Every sample draws its own Dirichlet weights, Beta weight, chain depths, ops, levels and signs (§3.1);
    chain step t of all B x width chains is one call of a step kernel, never a Python loop over samples:

    * ``strategy="fused"`` (accelerators): ``ops.apply_ops``, every sample through one LUT gather, one warp and
      one blend, with no data-dependent control flow and no host-device synchronisation;
    * ``strategy="grouped"`` (CPU): ``ops.apply_ops_grouped``, a loop over the op kinds on the samples that drew
      each; faster on a CPU, where reading the selection back costs nothing;
    * ``strategy="auto"`` (default): grouped on CPU (unless ``compile``), fused elsewhere.

    Both give identical views. ``compile=True`` wraps the fused step in ``torch.compile`` (falling back to eager
    with a warning where that fails); generated kernels may contract multiply-adds, so rare pixels can then differ
    from PIL by a grey level (none did on the CPU backend in our checks; it does not speed up CPUs).
    """

    def __init__(self, severity: int = 3, width: int = 3, depth: int = -1, alpha: float = 1.0, all_ops: bool = False,
                 fill: Fill = 0, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD,
                 compile: bool = False, chunk_size: int | None = None, strategy: str = "auto"):
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown AugMix strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
        if not 1 <= severity <= 10:
            raise ValueError(f"AugMix severity must be in 1..10; got {severity}")
        if width < 1 or alpha <= 0:
            raise ValueError(f"AugMix needs width >= 1 and alpha > 0; got width={width}, alpha={alpha}")
        check_fill(fill)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 entries and std > 0; got mean={mean}, std={std}")
        self.severity, self.width, self.depth, self.alpha = severity, width, depth, alpha
        self.ops = op_list(all_ops)
        self.fill = fill
        self.mean, self.std = tuple(mean), tuple(std)
        self.chunk_size = chunk_size  # samples per chunk; None sizes chunks by CHUNK_ELEMENTS
        self.strategy = strategy      # "fused": sync-free; "grouped": per-op sub-batches; "auto": grouped on CPU
        self.compile = compile        # torch.compile the fused step (falls back to eager where unavailable)
        self._fused = _compiled_or_eager(apply_ops) if compile else apply_ops

    def _step_for(self, device: torch.device) -> Callable[..., Tensor]:
        """The chain-step kernel: grouped on a CPU (no host sync to avoid there), fused on accelerators."""
        grouped = self.strategy == "grouped" or (self.strategy == "auto" and device.type == "cpu" and not self.compile)
        return apply_ops_grouped if grouped else self._fused

    def extra_repr(self) -> str:
        return (f"severity={self.severity}, width={self.width}, depth={self.depth}, alpha={self.alpha}, "
                f"ops={len(self.ops)}, fill={self.fill}, strategy={self.strategy}, compile={self.compile}")

    def sample(self, batch: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> ChainDraws:
        """The random draws of one view for each of ``batch`` samples (see :func:`sample_draws`)."""
        return sample_draws(batch, self.ops, self.severity, self.width, self.depth, self.alpha, generator, device)

    def forward(self, images: Tensor, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
        """One AugMix view per image.

        Args:
            images: (B, 3, H, W) uint8, any device (after the base crop/flip); or float in [0, 1] (a ``ToTensor``
                batch), quantised to uint8 first (the ops are Pillow's 8-bit ops).
            generator: source of every draw, on the images' device; pass one for reproducible views.
            dtype: output dtype (mixing is float32 as in the reference; the cast comes last).

        Returns:
            (B, 3, H, W) ``dtype`` normalised views, same device.
        """
        images = as_uint8(images)
        return self.mix(images, self.sample(images.shape[0], generator, images.device), dtype)

    def jsd_views(self, images: Tensor, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float32) -> Tensor:
        """The JSD batch [clean; aug1; aug2]: (B, 3, H, W) uint8 (or float in [0, 1]) -> (3B, 3, H, W) ``dtype``,
        normalised (§1, §6.1 order)."""
        images = as_uint8(images)
        augmented = self(torch.cat([images, images]), generator, dtype)  # two independent views per image
        return torch.cat([normalize(images, self.mean, self.std, dtype), augmented])

    def mix(self, images: Tensor, draws: ChainDraws, dtype: torch.dtype = torch.float32) -> Tensor:
        """Apply given draws (e.g. replayed from the reference's stream): (B, 3, H, W) uint8 -> ``dtype``.

        The batch runs in chunks of whole samples so that the float64 warp temporaries stay bounded; results do
        not depend on the chunking or on the strategy.
        """
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"AugMix expects (B, 3, H, W) uint8 images; got {tuple(images.shape)} {images.dtype}")
        b, c, h, w = images.shape
        k, slots = draws.op_index.shape[1:]
        params = chain_params(draws, self.ops, h, w)
        finished = torch.arange(slots, device=images.device) >= draws.depth.unsqueeze(-1)  # (B, K, D)
        op_index = torch.where(finished, len(self.ops), draws.op_index)  # len(ops) leaves the chain unchanged
        budget = CHUNK_ELEMENTS.get(images.device.type, CHUNK_ELEMENTS["cuda"])
        size = self.chunk_size or max(1, budget // (k * c * h * w))
        step = self._step_for(images.device)
        out = torch.empty(images.shape, dtype=dtype, device=images.device)
        for start in range(0, b, size):
            part = slice(start, start + size)
            out[part] = self._mix_chunk(step, images[part], op_index[part], params[part], draws.weights[part],
                                        draws.skip[part])
        return out

    def _mix_chunk(self, step: Callable[..., Tensor], images: Tensor, op_index: Tensor, params: Tensor,
                   weights: Tensor, skip: Tensor) -> Tensor:
        b, c, h, w = images.shape
        k, slots = op_index.shape[1:]
        chains = images.unsqueeze(1).expand(b, k, c, h, w).reshape(b * k, c, h, w)  # sample-major
        for t in range(slots):
            chains = step(chains, op_index[..., t].reshape(-1), params[..., t].reshape(-1), self.ops, self.fill)
        chains = normalize(chains, self.mean, self.std).view(b, k, c, h, w)
        mixture, term = torch.zeros_like(chains[:, 0]), torch.empty_like(chains[:, 0])
        for i in range(k):  # the reference's float32 operations and order: mix += w_i * N(chain_i)
            mixture += torch.mul(weights[:, i].view(b, 1, 1, 1), chains[:, i], out=term)
        m = skip.view(b, 1, 1, 1)  # m on the mixture, 1 - m on the clean image: the official code's side (§3.2)
        return normalize(images, self.mean, self.std).mul_(1 - m).add_(mixture.mul_(m))


def as_uint8(images: Tensor) -> Tensor:
    """uint8 images unchanged; float images in [0, 1] rounded to the nearest of the 256 levels (``x * 255``)."""
    if not images.is_floating_point():
        return images
    if images.numel() and (images.min() < 0 or images.max() > 1):  # reads two numbers back from the device
        raise ValueError(f"AugMix expects float images in [0, 1] (or uint8); got values in "
                         f"[{images.min().item():.4g}, {images.max().item():.4g}]")
    return images.mul(255).round_().to(torch.uint8)


def build_augmix(backend: str = "tensor", severity: int = 3, width: int = 3, depth: int = -1, alpha: float = 1.0,
                 all_ops: bool = False, fill: Fill = 0, mean: Sequence[float] = CIFAR_MEAN,
                 std: Sequence[float] = CIFAR_STD, compile: bool = False) -> Callable[..., Tensor]:
    """The AugMix backend by name: "tensor" -> :class:`AugMix` (batched, on the device, the default);
    "pil" -> ``augment.pil_reference.AugMixPIL`` (per image in DataLoader workers, the reference)."""
    if backend == "tensor":
        return AugMix(severity, width, depth, alpha, all_ops, fill, mean, std, compile=compile)
    if backend == "pil":
        from augment.pil_reference import AugMixPIL

        return AugMixPIL(severity=severity, width=width, depth=depth, alpha=alpha, all_ops=all_ops, fill=fill,
                         mean=mean, std=std)
    raise ValueError(f"unknown AugMix backend {backend!r}; valid: {', '.join(BACKENDS)}")
