"""`nas show`: an architecture layer by layer (torchinfo-style): output shape, params, MACs,
share of the budget; each block's leaf layers indented beneath it."""
from __future__ import annotations

import torch
from rich.table import Table

from ..budget import Budget, estimate, layer_costs
from ..spaces import Architecture
from .console import console, human


def _leaf_rows(module: torch.nn.Module, x: torch.Tensor):
    """(path, type, output shape, params, MACs) of every leaf module, from one forward pass."""
    rows = []

    def hook(name):
        def record(mod, inputs, output):
            macs = 0
            if isinstance(mod, torch.nn.Conv2d):
                macs = output[0].numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
            elif isinstance(mod, torch.nn.Linear):
                macs = mod.in_features * mod.out_features
            params = sum(p.numel() for p in mod.parameters(recurse=False) if p.requires_grad)
            rows.append((name, type(mod).__name__, tuple(output.shape[1:]), params, macs))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in module.named_modules() if not list(m.children())]
    try:
        with torch.no_grad():
            module.eval()(x)
    finally:
        for h in handles:
            h.remove()
    return rows


def architecture_table(arch: Architecture, budget: Budget | None = None, leaves: bool = True) -> Table:
    total = estimate(arch)
    model = arch.build()
    leaf = _leaf_rows(model, torch.zeros(1, arch.in_channels, arch.input_size, arch.input_size))
    table = Table(title=arch.summary(), title_justify="left")
    for col, justify in (("layer", "left"), ("type", "left"), ("output", "right"), ("params", "right"),
                         ("MACs", "right"), ("% budget", "right")):
        table.add_column(col, justify=justify)

    def share(params: int, macs: int) -> str:
        if budget is None or (budget.max_params is None and budget.max_macs is None):
            return f"{100 * params / max(1, total.params):.1f}% of all"
        parts = []
        if budget.max_params:
            parts.append(f"{100 * params / budget.max_params:.1f}%")
        if budget.max_macs:
            parts.append(f"{100 * macs / budget.max_macs:.1f}% M")
        return " ".join(parts)

    for row in layer_costs(arch):
        kind = {"maxpool": "MaxPool2d", "avgpool": "AvgPool2d"}.get(row.kind, row.kind)
        shape = f"{row.cout}x{row.size}x{row.size}" if row.name != "head" else str(row.cout)
        table.add_row(f"[bold]{row.name}[/]", kind, shape, f"{row.cost.params:,}", human(row.cost.macs),
                      share(row.cost.params, row.cost.macs))
        if leaves and row.kind not in ("maxpool", "avgpool"):
            prefix = row.name + "."
            for name, typ, out, params, macs in leaf:
                if name.startswith(prefix) and (params or macs):
                    table.add_row("  " + name[len(prefix):], typ, "x".join(map(str, out)), f"{params:,}",
                                  human(macs) if macs else "", "")
    table.add_section()
    table.add_row("[bold]total[/]", "", "", f"[bold]{total.params:,}[/]", f"[bold]{human(total.macs)}[/]",
                  share(total.params, total.macs))
    return table


def print_architecture(arch: Architecture, budget: Budget | None = None, leaves: bool = True) -> None:
    console.print(architecture_table(arch, budget, leaves))
    total = estimate(arch)
    line = f"{total.params:,} trainable parameters, {total.macs:,} MACs per image"
    if budget is not None and budget.describe() != "no limit":
        line += f"; budget {budget.describe()}: {'fits' if budget.fits(total) else 'OVER BUDGET'} ({100 * budget.use(total):.1f}% used)"
    console.print(line)
