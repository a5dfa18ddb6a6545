"""The depthwise weight gradient: oneDNN's own against nas.kernels' block-diagonal grouped-conv
gradient (BLOCK channels per group), per shape and precision, on one thread, exactness checked."""
import time

import torch
from common import parser, publish, table

from nas.kernels import BLOCK

SHAPES = [(16, 7, 32), (96, 7, 32), (64, 5, 16), (32, 5, 32)]  # channels, kernel, size


def seconds(f, repeats=5) -> float:
    for _ in range(2):
        f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2]


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    torch.set_num_threads(1)
    backward = torch.ops.aten.convolution_backward
    rows = []
    for c, k, hw in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(args.batch, c, hw, hw, dtype=dtype).contiguous(memory_format=torch.channels_last)
            g = torch.randn(args.batch, c, hw, hw, dtype=dtype).contiguous(memory_format=torch.channels_last)
            w, dense = torch.empty(c, 1, k, k, dtype=dtype), torch.empty(c, BLOCK, k, k, dtype=dtype)
            pad = [k // 2] * 2

            def onednn():
                return backward(g, x, w, None, [1, 1], pad, [1, 1], False, [0, 0], c, [False, True, False])[1]

            def blocks():
                full = backward(g, x, dense, None, [1, 1], pad, [1, 1], False, [0, 0], c // BLOCK,
                                [False, True, False])[1]
                return full[torch.arange(c), torch.arange(c) % BLOCK].unsqueeze(1)

            error = ((blocks().float() - onednn().float()).abs().max() / onednn().float().abs().max()).item()
            a, b = seconds(onednn), seconds(blocks)
            rows.append([f"{c} ch {k}x{k} {hw}x{hw}", str(dtype).removeprefix("torch."), f"{1000 * a:.1f}",
                         f"{1000 * b:.1f}", f"{a / b:.2f}x", f"{error:.0e}"])
            print(rows[-1], flush=True)
    publish("Depthwise weight gradient: oneDNN against the block-diagonal trick",
            table(["shape", "dtype", "oneDNN ms", f"blocks of {BLOCK} ms", "speed-up", "max rel. difference"], rows)
            + f"\n\nBatch {args.batch}, channels_last, one thread, median of 5.", args.docs)


if __name__ == "__main__":
    main()
