#!/usr/bin/python3
"""benchmarks/sklearn_compare.py: scikit-learn on the same vectors as
bench_centroids (a raw float64 file, n x 10). Times MiniBatchKMeans.partial_fit
over one pass at several batch sizes, and reports each final inertia against
batch KMeans (n_init=5) on the same data. Run with Debian's /usr/bin/python3.
    /usr/bin/python3 benchmarks/sklearn_compare.py VECTORS.f64 [K] [OUR_INERTIA]
"""
import sys, time
import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans

path = sys.argv[1]
k = int(sys.argv[2]) if len(sys.argv) > 2 else 6
ours = float(sys.argv[3]) if len(sys.argv) > 3 else None
X = np.fromfile(path, dtype=np.float64).reshape(-1, 10)
n = len(X)
t0 = time.perf_counter()
km = KMeans(n_clusters=k, n_init=5, random_state=0).fit(X)
t_batch = time.perf_counter() - t0
print(f"points {n}: batch KMeans(n_init=5) inertia {km.inertia_:.1f} in {t_batch:.2f} s")
for b in (100, 1000, 10000):
    mb = MiniBatchKMeans(n_clusters=k, batch_size=b, random_state=0, n_init=1)
    mb.partial_fit(X[:max(b, 3 * k)])  # initialisation, as bench_centroids seeds first
    t0 = time.perf_counter()
    for i in range(0, n, b):
        mb.partial_fit(X[i:i + b])
    dt = time.perf_counter() - t0
    inertia = -mb.score(X)
    print(f"MiniBatchKMeans.partial_fit batch {b:5d}: {n / dt / 1e6:.3f} M points/s, "
          f"inertia {inertia:.1f} = {inertia / km.inertia_:.4f} x batch")
if ours is not None:
    print(f"segstream online k-means inertia {ours:.1f} = {ours / km.inertia_:.4f} x batch")
