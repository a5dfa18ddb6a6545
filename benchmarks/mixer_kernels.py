"""The token-mixer's C kernels against PyTorch, forward and backward, per shape and precision: its gated
activation act(a) * b (a, b the halves of the first 1x1 conv's channels; PyTorch: chunk, activation,
multiply) and its LayerNorm2d (PyTorch: permute, F.layer_norm in fp32 as autocast runs it, permute); then
the training step of spaces/tiny.py's 40-50k mixer candidate (cpu_throughput.py's) with neither kernel,
the gated one, and both, interleaved in one process, channels_last and the precision the trainer picks here
(bf16 autocast where the CPU has bf16 natively, fp32 elsewhere)."""

import statistics
import time

import torch
import torch.nn.functional as F
from common import median_seconds, parser, publish, table
from cpu_throughput import family_candidate

from nas import kernels, native
from nas.execution import cpu_has_bf16
from nas.spaces.layers import LayerNorm2d

# batch, hidden channels (each half), size: the tiny space's mixer widths at 32, 16 and 8 pixels, expansion 2
SHAPES = [(256, 48, 32), (256, 96, 16), (256, 144, 16), (256, 192, 8)]
NORM_SHAPES = [(256, 24, 32), (256, 48, 16), (256, 72, 16), (256, 96, 8)]  # the blocks' widths


def norm_step(x, grad, norm, fused: bool):
    """One forward and backward of LayerNorm2d; returns (output, x's gradient)."""
    xi = x.detach().requires_grad_()
    if fused:
        y = kernels.layer_norm2d(xi, norm)
    else:  # as under bf16 autocast: F.layer_norm in fp32, the output cast back by the next conv
        y = norm(xi.float()).to(x.dtype)
    y.backward(grad)
    return y, xi.grad


def step(h, grad, fused: bool):
    """One forward and backward of GELU(a) * b; returns (output, h's gradient)."""
    if fused:
        code = native.ACTIVATIONS["gelu"]
        return torch.ops.nas.gated_act(h, code), torch.ops.nas.gated_act_backward(h, grad, code)
    hi = h.detach().requires_grad_()
    a, b = hi.chunk(2, dim=1)
    y = F.gelu(a) * b
    y.backward(grad)
    return y, hi.grad


CONFIGS = {"PyTorch's": (), "gated kernel": ("gated_act_applies",), "both kernels": ("gated_act_applies", "layer_norm_applies")}


def network_steps(batch: int, rounds: int, seed: int, bf16: bool) -> dict[str, float]:
    """Median ms of a training step of the mixer candidate in each of CONFIGS, interleaved, under bf16
    autocast or in fp32."""
    torch.manual_seed(seed)
    model = family_candidate("mixer").build().to(memory_format=torch.channels_last)
    kernels.accelerate(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    applies = {name: getattr(native, name) for name in ("gated_act_applies", "layer_norm_applies")}

    def one(config: str) -> float:
        for name, fn in applies.items():
            setattr(native, name, fn if name in CONFIGS[config] else (lambda *a: False))
        try:
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return time.perf_counter() - start
        finally:
            for name, fn in applies.items():
                setattr(native, name, fn)

    for config in [*CONFIGS, *CONFIGS]:  # warm-up
        one(config)
    times = {config: [] for config in CONFIGS}
    for _ in range(rounds):
        for config in CONFIGS:
            times[config].append(one(config))
    return {config: statistics.median(t) * 1e3 for config, t in times.items()}


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="the training step's precision (default: bf16 where the CPU has it natively, as the trainer)")
    p.add_argument("--steps-only", action="store_true", help="only the training-step table")
    args = p.parse_args()
    bf16 = args.precision == "bf16" or (args.precision == "auto" and cpu_has_bf16())
    torch.set_num_threads(args.threads)
    if not native.available():
        raise SystemExit("nas.native's C kernels did not build here (no C compiler?): nothing to compare")
    rows = []
    for n, c, hw in [] if args.steps_only else SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(0)
            h = torch.randn(n, 2 * c, hw, hw, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
            grad = torch.randn(n, c, hw, hw, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
            plain = median_seconds(lambda: step(h, grad, False), repeats=7)
            fused = median_seconds(lambda: step(h, grad, True), repeats=7)
            ref = step(h.float(), grad.float(), False)
            got = step(h, grad, True)
            diff = [((a.float() - r).abs().max() / r.abs().max()).item() for a, r in zip(got, ref)]
            rows.append(["gated GELU", f"2x{c} ch {hw}x{hw}", str(dtype).replace("torch.", ""), f"{plain * 1e3:.1f}",
                         f"{fused * 1e3:.1f}", f"**{plain / fused:.2f}x**", f"{diff[0]:.0e}", f"{diff[1]:.0e}"])
            print(rows[-1], flush=True)
    for n, c, hw in [] if args.steps_only else NORM_SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(0)
            x = (torch.randn(n, c, hw, hw, generator=g) * 2 + 1).to(dtype).contiguous(memory_format=torch.channels_last)
            grad = torch.randn(n, c, hw, hw, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
            norm = LayerNorm2d(c)
            plain = median_seconds(lambda: norm_step(x, grad, norm, False), repeats=7)
            fused = median_seconds(lambda: norm_step(x, grad, norm, True), repeats=7)
            ref = norm_step(x.float(), grad.float(), norm, False)
            got = norm_step(x, grad, norm, True)
            diff = [((a.float() - r).abs().max() / r.abs().max()).item() for a, r in zip(got, ref)]
            rows.append(["LayerNorm2d", f"{c} ch {hw}x{hw}", str(dtype).replace("torch.", ""), f"{plain * 1e3:.1f}",
                         f"{fused * 1e3:.1f}", f"**{plain / fused:.2f}x**", f"{diff[0]:.0e}", f"{diff[1]:.0e}"])
            print(rows[-1], flush=True)
    steps = network_steps(args.batch, args.rounds, args.seed, bf16)
    print("mixer step ms:", steps, flush=True)
    base = steps["PyTorch's"]
    publish("The mixer's gated activation and LayerNorm: PyTorch against the C kernels",
            table(["op", "shape", "dtype", "PyTorch ms", "C kernel ms", "speed-up", "output max rel. diff.",
                   "input grad max rel. diff."], rows)
            + f"\n\nBatch {SHAPES[0][0]}, channels_last, {args.threads} thread(s), median of 7, forward + "
              "backward; differences against PyTorch in fp32 on the same (rounded) inputs.\n\n"
              + table(["mixer training step", "ms", "speed-up"],
                      [[config, f"{ms:.0f}", f"**{base / ms:.2f}x**"] for config, ms in steps.items()])
            + f"\n\ncpu_throughput.py's mixer candidate, batch {args.batch}, {'bf16 autocast' if bf16 else 'fp32'}, "
              f"channels_last, the other "
              f"kernels on, synthetic input; median of {args.rounds} steps each, the configurations interleaved.",
            args.docs)


if __name__ == "__main__":
    main()
