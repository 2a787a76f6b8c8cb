#!/usr/bin/env python3
"""Reference timings for the robust aggregation rules in PyTorch.

Re-states, on float32 tensors, the torch code paths of EPFL's ByzFL
(byzfl/aggregators/aggregators.py with byzfl/utils/torch_tools.py) for
the rules MFN benchmarks at n = 100, d = 1e5, f = 20:

  krum             cdist(x, x)**2, sort each row, sum of the n-f-1
                   smallest non-self distances, argmin
  multi-krum       the same scores, the n-f lowest (argpartition/topk),
                   mean of those vectors
  median           torch.quantile(x, q=0.5, dim=0)  (torch_tools.median)
  median-torch     torch.median(x, dim=0) for comparison (not what
                   ByzFL calls)
  trimmed-mean     sort along dim 0, keep [f, n-f), mean
  geometric-median Weiszfeld, nu = 0.1, T = 3 iterations, from zero
  mean             torch.mean(x, dim=0)

Usage: byzfl_ref.py [--n 100] [--d 100000] [--f 20] [--threads 2]
                    [--runs 10] [--rules krum,multi-krum,...]
Prints one line per rule: median and minimum wall milliseconds over the
timed runs (after one warm-up run).
"""
import argparse
import statistics
import time

import torch


def krum_scores(x, f):
    n = x.shape[0]
    dist = torch.cdist(x, x) ** 2
    dist_sorted = torch.sort(dist, dim=1)[0][:, 1:n - f]
    return dist_sorted.sum(dim=1)


def krum(x, f):
    return x[torch.argmin(krum_scores(x, f))]


def multi_krum(x, f):
    n = x.shape[0]
    scores = krum_scores(x, f)
    idx = torch.topk(scores, n - f, largest=False).indices
    return torch.mean(x[idx], dim=0)


def median(x, f):
    return torch.quantile(x, q=0.5, dim=0)


def median_torch(x, f):
    return torch.median(x, dim=0).values


def trimmed_mean(x, f):
    n = x.shape[0]
    s = torch.sort(x, dim=0)[0]
    return torch.mean(s[f:n - f], dim=0)


def geometric_median(x, f, nu=0.1, T=3):
    z = torch.zeros_like(x[0])
    for _ in range(T):
        betas = torch.linalg.norm(x - z, dim=1)
        betas = torch.clamp(betas, min=nu)
        betas = (1.0 / betas)[:, None]
        z = (x * betas).sum(dim=0) / betas.sum()
    return z


def mean(x, f):
    return torch.mean(x, dim=0)


RULES = {
    "krum": krum,
    "multi-krum": multi_krum,
    "median": median,
    "median-torch": median_torch,
    "trimmed-mean": trimmed_mean,
    "geometric-median": geometric_median,
    "mean": mean,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--d", type=int, default=100000)
    ap.add_argument("--f", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rules", default=",".join(RULES))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(42)
    x = torch.randn(a.n, a.d, generator=g, dtype=torch.float32)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"n={a.n} d={a.d} f={a.f}, {a.runs} runs after one warm-up")
    for name in a.rules.split(","):
        fn = RULES[name]
        with torch.no_grad():
            fn(x, a.f)
            ms = []
            for _ in range(a.runs):
                t = time.perf_counter()
                fn(x, a.f)
                ms.append((time.perf_counter() - t) * 1e3)
        print(f"{name:18s} median {statistics.median(ms):10.1f} ms   "
              f"min {min(ms):10.1f} ms", flush=True)


if __name__ == "__main__":
    main()
