#!/usr/bin/env python3
"""EM for a full-covariance Gaussian mixture with scikit-learn, timed; the reference side of
compare-sklearn.sh. Writes the synthetic data and start it used as safetensors (x, init.weights,
init.means) so `ilgpuoct bench gmm --data FILE` fits exactly the same problem, then prints JSON."""
import argparse
import json
import struct
import sys
import time

import numpy as np
import sklearn
from sklearn.mixture import GaussianMixture


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}[array.dtype]
        data = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-data", required=True)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    n, d, k = args.n, args.d, args.k
    centres = 2.0 * rng.standard_normal((k, d))
    scales = 0.5 + rng.random(d)
    x = (centres[np.arange(n) % k] + scales * rng.standard_normal((n, d))).astype(np.float32)
    weights = np.full(k, 1.0 / k)
    means = x[rng.choice(n, size=k, replace=False)].astype(np.float64)
    write_safetensors(args.write_data, {"x": x, "init.weights": weights, "init.means": means})

    # tol=0: |change| < 0 never holds, so exactly --iters iterations, as `bench gmm` runs them.
    gmm = GaussianMixture(n_components=k, covariance_type="full", tol=0.0, max_iter=args.iters,
                          weights_init=weights, means_init=means,
                          precisions_init=np.repeat(np.eye(d)[None], k, axis=0),
                          init_params="random_from_data", random_state=0)
    start = time.perf_counter()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: intended, tol is 0
        gmm.fit(x)
    seconds = time.perf_counter() - start
    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{i['internal_api']} {i.get('version') or ''} ({i['num_threads']} threads)" for i in threadpool_info() if i["user_api"] == "blas")
    except ImportError:
        blas = ""
    json.dump({"implementation": f"scikit-learn {sklearn.__version__} (numpy {np.__version__})",
               "blas": blas or "reference BLAS (threadpoolctl sees no optimised BLAS)",
               "n": n, "d": d, "k": k, "iterations": int(gmm.n_iter_), "seconds": seconds,
               "seconds_per_iteration": seconds / gmm.n_iter_, "lower_bound": float(gmm.lower_bound_)},
              sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
