"""The depthwise weight gradient of nas.native, built from each C file given, timed on tiny-50k's shapes (fp32 and bf16, batch 256, 2 threads) and checked against oneDNN. Usage: python depthwise_wgrad_builds.py OLD.c NEW.c"""
import ctypes, subprocess, sys, tempfile, time, statistics, torch
from nas import native
torch.set_num_threads(2)
FL = native.FLAGS + ["-fopenmp"]
libs = {}
for src in sys.argv[1:]:
    out = f"{tempfile.gettempdir()}/wgrad-{src.replace('/', '_')}.so"
    subprocess.run(["gcc", *FL, src, "-o", out], check=True)
    lib = ctypes.CDLL(out); lib.depthwise_wgrad.argtypes = [ctypes.c_void_p]*3 + [ctypes.c_int]*12
    libs[src.split('/')[-1]] = lib
SHAPES = [(32, 5, 32, 1), (72, 7, 16, 1), (64, 5, 8, 1), (72, 7, 32, 2), (96, 7, 32, 1), (48, 3, 16, 1), (144,7,8,1)]
N = 256
for dt in (torch.float32, torch.bfloat16):
  for c, k, hw, s in SHAPES:
    x = torch.randn(N, c, hw, hw, dtype=dt).contiguous(memory_format=torch.channels_last)
    ho = (hw + 2*(k//2) - k)//s + 1
    g = torch.randn(N, c, ho, ho, dtype=dt).contiguous(memory_format=torch.channels_last)
    ref = torch.ops.aten.convolution_backward(g.float(), x.float(), torch.empty(c,1,k,k), None, [s,s], [k//2]*2, [1,1], False, [0,0], c, [False,True,False])[1]
    flop = 2 * N * c * ho * ho * k * k
    row = [f"{'bf16' if dt == torch.bfloat16 else 'fp32'} c{c} k{k} {hw}px s{s}"]
    for name, lib in libs.items():
        dw = torch.empty(k, k, c)
        def run():
            lib.depthwise_wgrad(x.data_ptr(), g.data_ptr(), dw.data_ptr(), int(dt == torch.bfloat16), N, hw, hw, c, ho, ho, k, k, s, k//2, 2)
        run()
        err = (dw.permute(2,0,1).unsqueeze(1) - ref).abs().max().item() / ref.abs().max().item()
        ts = []
        for _ in range(7):
            t = time.perf_counter(); run(); ts.append(time.perf_counter() - t)
        m = statistics.median(ts)
        row.append(f"{name} {m*1e3:.1f} ms {flop/m/1e9:.0f} GF/s err {err:.1e}")
    print(" | ".join(row), flush=True)
