"""Throughput of integrad.run against a bare loop around explain, on the demo's digits CNN.

``python bench/runs.py`` explains the same examples both ways (same batches, target =
the model's top class) and prints examples/s and the store's overhead: writing each
batch's shard, hashing it and journaling it, plus fingerprinting model and data.
``--ray-workers 1 2`` (needs ``integrad[ray]``) also times ``backend="ray"`` with 1
and 2 workers on a local Ray instance (started once, not timed; the workers' start-up,
one model copy each, is timed, as a user waits for it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch

import integrad
from integrad.demo import digits_cnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-steps", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ray-workers", type=int, nargs="*", default=[], metavar="N")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # completeness warnings: the steps are deliberately few
    torch.manual_seed(0)
    model = digits_cnn().eval()
    x = torch.rand(args.examples, 1, 8, 8)

    def bare(_: str) -> None:
        for start in range(0, args.examples, args.batch_size):
            xb = x[start : start + args.batch_size]
            with torch.no_grad():
                target = model(xb).argmax(1)
            integrad.explain(model, xb, target=target, n_steps=args.n_steps)

    def stored(out: str) -> None:
        integrad.run(
            model, x, out=out, batch_size=args.batch_size, n_steps=args.n_steps, progress=False
        )

    def on_ray(out: str, workers: int) -> None:
        integrad.run(
            model,
            x,
            out=out,
            batch_size=args.batch_size,
            n_steps=args.n_steps,
            progress=False,
            backend="ray",
            workers=workers,
        )

    best: dict[str, float] = {}
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    with tempfile.TemporaryDirectory() as root:
        for repeat in range(args.repeats):
            out = f"{root}/run{repeat}"  # a new run each time; removing it is not timed
            took, cpu = {}, {}
            for name, job in (("bare loop", bare), ("integrad.run", stored)):
                started, cpu_started = time.perf_counter(), time.process_time()
                job(out)
                took[name] = time.perf_counter() - started
                cpu[name] = time.process_time() - cpu_started
                best[name] = min(best.get(name, float("inf")), took[name])
            ratios.append(took["integrad.run"] / took["bare loop"])
            cpu_ratios.append(cpu["integrad.run"] / cpu["bare loop"])
        if args.ray_workers:
            import ray

            cpus = max(args.ray_workers)
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            for repeat in range(args.repeats):
                for n in args.ray_workers:  # alternating, as the load on the machine drifts
                    name = f"ray, {n} worker{'s' if n > 1 else ''}"
                    started = time.perf_counter()
                    on_ray(f"{root}/ray{n}-{repeat}", n)
                    took = time.perf_counter() - started
                    best[name] = min(best.get(name, float("inf")), took)
            ray.shutdown()
    for name, seconds in best.items():
        print(f"{name:>17}: {args.examples / seconds:8.1f} examples/s ({seconds:.2f} s, best)")
    overhead = best["integrad.run"] / best["bare loop"] - 1
    # Paired ratios (each run right after its bare loop) resist a machine whose load drifts.
    paired = statistics.median(ratios) - 1
    # CPU time (user + system, this process) is the least disturbed by other processes.
    paired_cpu = statistics.median(cpu_ratios) - 1
    print(
        f"store overhead: {100 * overhead:+.1f}% (best of {args.repeats}), "
        f"{100 * paired:+.1f}% (median of {args.repeats} paired ratios), "
        f"{100 * paired_cpu:+.1f}% in CPU time (median)"
    )


if __name__ == "__main__":
    main()
