"""Running a sweep's lanes on a Dask cluster (`scheduler=`, `--scheduler`).

The lanes of a sweep are independent: they are split into chunks (`split`), each chunk
runs recur's own engine on a worker (`task`), and the pieces are put back in lane
order (`assemble`); `runner` drives it, `address` starts or reaches the cluster, and
`worker` sets up the processes of a local one. A long recurrence affine in its state
(`engine="scan"`) is split by steps instead (`scan`).
Nothing here imports Dask until a cluster is asked for: it is the extra `recur[dask]`.
"""
