"""Exact parameter and MAC counts of an Architecture, without building it.

What is counted
- params: every trainable tensor (conv and linear weights and biases, BatchNorm and LayerNorm
  affine weights, the mixer's layer scale). Equal to sum(p.numel()) of the built module.
- MACs: multiply-accumulates of convolutions, linear layers and the gated block's
  sum_k a_k Conv_k(X) (an einsum: K*C*H*W per sample). Bias adds, normalisation, activations,
  pooling and elementwise products are not MACs and are not counted.
  fvcore counts the same set when given only its conv/linear/matmul/einsum handles (its default set
  adds norms and pools); ptflops' aten backend counts convolution, mm/addmm and bmm plus the bias
  adds of conv and linear layers, which `ptflops_macs` takes back out. See those two functions.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import UserError
from .spaces.cost import ZERO, Cost, conv, linear
from .spaces.registry import FAMILIES
from .spaces.space import Architecture


@lru_cache(maxsize=1 << 16)
def _layer_cost(kind: str, cin: int, cout: int, stride: int, size: int, knobs: tuple) -> tuple[Cost, int]:
    if kind in ("maxpool", "avgpool"):
        return ZERO, size // 2
    return FAMILIES[kind].cost(cin, cout, stride, size, **dict(knobs))


@dataclass(frozen=True)
class LayerCost:
    name: str  # the module's path in the built network: stem, stages.0.1, head
    kind: str
    cout: int
    size: int  # output height (= width)
    cost: Cost


def layer_costs(arch: Architecture) -> list[LayerCost]:
    """Cost of each top-level layer, in order; they sum to `estimate(arch)`."""
    size = arch.input_size
    stem = ZERO
    if arch.stem_whiten:  # 2x2 whitening filters (fitted, not trained: only their bias counts)
        white = 2 * arch.in_channels * 4
        filters, size = conv(arch.in_channels, white, 2, 1, size, bias=True, bn=False)
        stem, cin = Cost(white, filters.macs), white
    else:
        cin = arch.in_channels
    conv_bn, size = conv(cin, arch.stem_width, arch.stem_kernel, 1, size)
    stem += conv_bn
    rows = [LayerCost("stem", "conv", arch.stem_width, size, stem)]
    for i, stage in enumerate(arch.plan()):
        for j, layer in enumerate(stage):
            c, size = _layer_cost(layer.kind, layer.cin, layer.cout, layer.stride, size,
                                  tuple(sorted(layer.knobs.items())))
            rows.append(LayerCost(f"stages.{i}.{j}", layer.kind, layer.cout, size, c))
    features = arch.last_width * arch.head_pool * arch.head_pool
    head = ZERO
    if arch.head_hidden:
        head += linear(features, arch.head_hidden)
        features = arch.head_hidden
    rows.append(LayerCost("head", "classifier", arch.num_classes, 1, head + linear(features, arch.num_classes)))
    return rows


def estimate(arch: Architecture) -> Cost:
    """Exact trainable parameters and MACs for one image of arch.input_size."""
    total = ZERO
    for row in layer_costs(arch):
        total += row.cost
    return total


# --- budgets ------------------------------------------------------------------------------

class BudgetError(UserError):
    """A budget that cannot be parsed."""


@dataclass(frozen=True)
class Budget:
    max_params: int | None = None
    max_macs: int | None = None
    name: str = ""

    def fits(self, cost: Cost) -> bool:
        return ((self.max_params is None or cost.params <= self.max_params)
                and (self.max_macs is None or cost.macs <= self.max_macs))

    def use(self, cost: Cost) -> float:
        """The largest fraction of any cap that `cost` uses (0 when uncapped)."""
        fractions = [cost.params / self.max_params] if self.max_params else []
        fractions += [cost.macs / self.max_macs] if self.max_macs else []
        return max(fractions, default=0.0)

    def describe(self) -> str:
        parts = []
        if self.max_params is not None:
            parts.append(f"params <= {self.max_params:,}")
        if self.max_macs is not None:
            parts.append(f"MACs <= {self.max_macs:,}")
        return " and ".join(parts) or "no limit"

    def to_dict(self) -> dict:
        return {"max_params": self.max_params, "max_macs": self.max_macs, "name": self.name}

    @classmethod
    def from_dict(cls, data: dict | None) -> "Budget":
        data = data or {}
        return cls(data.get("max_params"), data.get("max_macs"), data.get("name", ""))


_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}


def parse_count(text: str) -> int:
    """'50000', '50k', '50_000', '5M', '1.5M', '20G' -> an integer count."""
    m = re.fullmatch(r"\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([kKmMgGbB]?)\s*", str(text))
    if not m:
        raise BudgetError(f"not a count: {text!r} (use e.g. 50000, 50k, 5M)")
    value = float(m.group(1).replace("_", "").replace(",", "")) * _SUFFIX[m.group(2).lower()]
    if value <= 0 or value != int(value):
        raise BudgetError(f"a budget must be a positive whole number, not {text!r}")
    return int(value)


def load_budget_file(path: str | Path) -> Budget:
    """A budget file: TOML with `params` and/or `macs` (numbers or strings like "50k")."""
    path = Path(path)
    if not path.is_file():
        raise BudgetError(f"budget file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BudgetError(f"budget file {path} is not valid TOML: {e}") from e
    unknown = set(data) - {"params", "macs", "name", "description"}
    if unknown:
        raise BudgetError(f"budget file {path}: unknown keys {sorted(unknown)} (use params, macs)")
    if "params" not in data and "macs" not in data:
        raise BudgetError(f"budget file {path} sets neither params nor macs")
    params = parse_count(data["params"]) if "params" in data else None
    macs = parse_count(data["macs"]) if "macs" in data else None
    return Budget(params, macs, str(data.get("name", path.stem)))


def parse_budget(budget: str | None, macs: str | None = None) -> Budget:
    """The CLI's --budget (a count or a .toml file) and --macs, as one Budget."""
    if budget is None and macs is None:
        raise BudgetError("give a budget: --budget 50k, --budget budgets/NAME.toml or --macs 20M")
    base = Budget()
    if budget is not None:
        looks_like_file = budget.endswith(".toml") or "/" in budget
        base = load_budget_file(budget) if looks_like_file else Budget(parse_count(budget), None, f"{budget} params")
    if macs is not None:
        base = Budget(base.max_params, parse_count(macs), base.name)
    return base


# --- cross-checks against the built module (fvcore, ptflops) --------------------------------

def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fvcore_macs(model, input_size: int = 32, in_channels: int = 3) -> int:
    """fvcore's count with only its conv, linear, matmul and einsum handles (its default set also
    counts norms and pools, which are not MACs)."""
    import torch
    from fvcore.nn import jit_handles as h
    from fvcore.nn.jit_analysis import JitModelAnalysis

    model.eval()
    analysis = JitModelAnalysis(model, torch.zeros(1, in_channels, input_size, input_size))
    analysis.set_op_handle(**{
        "aten::_convolution": h.conv_flop_jit, "aten::addmm": h.addmm_flop_jit, "aten::linear": h.linear_flop_jit,
        "aten::matmul": h.matmul_flop_jit, "aten::bmm": h.bmm_flop_jit, "aten::einsum": h.einsum_flop_jit,
    })
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return int(analysis.total())


def ptflops_macs(model, input_size: int = 32, in_channels: int = 3) -> int:
    """ptflops' aten backend (it counts aten convolution, mm/addmm and bmm), less the bias adds
    it folds into conv and addmm, which are not MACs."""
    import torch
    from ptflops import get_model_complexity_info

    model.eval()
    macs, _ = get_model_complexity_info(model, (in_channels, input_size, input_size), as_strings=False,
                                        backend="aten", print_per_layer_stat=False, verbose=False)
    return int(macs) - _bias_adds(model, torch.zeros(1, in_channels, input_size, input_size))


def _bias_adds(model, x) -> int:
    """Output elements of every conv/linear layer with a bias, for one input."""
    import torch

    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total
