"""Running a flow's shard stages on a Dask cluster through prefect-dask's ``DaskTaskRunner``.

``--cluster local`` starts a ``distributed.LocalCluster`` of worker processes for the run (one per
GPU when there are GPUs, else ``--workers``, default 2); ``--cluster tcp://host:8786`` uses an
existing scheduler. Workers compute shards and write Parquet only; the flow process registers
every artifact in DuckDB (the single writer). Each worker process keeps its models in
``glocal.encode.cache`` and reuses them for every shard it gets; on a machine with GPUs, worker i of a
LocalCluster uses cuda:<i mod GPU count> (``glocal.encode.cache.compute_device``).
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from typing import Callable


def task_runner(cluster: str, workers: int | None = None, api_url: str | None = None):
    """The DaskTaskRunner for ``cluster`` ("local" or a scheduler address). ``api_url``: the
    Prefect API the local workers report task runs to (without it each worker process would start
    a server of its own)."""
    from prefect_dask import DaskTaskRunner

    if cluster == "local":
        n = workers or gpu_count() or 2
        if n < 1:
            raise ValueError(f"--workers must be >= 1, not {n}")
        # one thread per worker: a worker runs one shard at a time; torch in each worker gets an
        # equal share of the cores, so 2 workers on 2 cores do not oversubscribe them
        threads = max(1, (os.cpu_count() or 1) // n)
        env = {"OMP_NUM_THREADS": str(threads), "GLOCAL_TORCH_THREADS": str(threads)}
        if api_url:
            env["PREFECT_API_URL"] = api_url
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None, "env": env,
                                              # Dask's scratch folder off the workers' import path (flows.worker_setup)
                                              "preload": ["flows.worker_setup"]})
    if "://" not in cluster:
        raise ValueError(f"--cluster takes 'local' or a Dask scheduler address such as tcp://host:8786, not {cluster!r}")
    if workers:
        raise ValueError("--workers applies to --cluster local; an existing cluster has the workers it has")
    return DaskTaskRunner(address=cluster)


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def on_cluster() -> bool:
    """True inside a flow run whose task runner is a DaskTaskRunner."""
    from prefect.context import FlowRunContext
    from prefect_dask import DaskTaskRunner

    context = FlowRunContext.get()
    return context is not None and isinstance(context.task_runner, DaskTaskRunner)


@contextmanager
def cluster_flow(flow_fn, cluster: str | None, workers: int | None = None):
    """``flow_fn`` set to run its shard stages on ``cluster`` (unchanged when None). Without a
    configured Prefect API, a local API server is started first and shared with the workers."""
    if not cluster:  # (workers without a cluster is refused by the run's plan, glocal.run.plan)
        yield flow_fn
        return
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    with ExitStack() as stack:
        url = PREFECT_API_URL.value()
        if not url:
            from prefect.server.api.server import SubprocessASGIServer

            server = SubprocessASGIServer()  # one per process: the outer flow's temporary server when it has one
            if not server.running:  # stopped here only when started here (the outer flow still reports to it)
                server.start(timeout=PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
                stack.callback(server.stop)
            url = server.api_url
            stack.enter_context(temporary_settings(updates={PREFECT_API_URL: url}))
        yield flow_fn.with_options(task_runner=task_runner(cluster, workers, api_url=url))


def run_shards(stage: str, shards: list[int], compute_task, inputs: Callable[[int], dict], register: Callable[[int, dict], None],
               on_done: Callable[[int], None] = lambda shard: None) -> None:
    """Compute ``shards`` with ``compute_task`` (in this process, or submitted to the flow's Dask
    cluster) and register each result here, in the flow process: workers never open the
    database. On a cluster every shard that finished is registered before a failure is raised,
    so a rerun redoes only the failed ones."""
    def named(shard: int):
        # "encode shard 3": what the Prefect UI and logs show for this task run (a plain function,
        # as benchmarks/score.py passes, runs as it is)
        if not hasattr(compute_task, "with_options"):
            return compute_task
        return compute_task.with_options(task_run_name=f"{stage} shard {shard}")

    if not on_cluster():
        for shard in shards:
            register(shard, named(shard)(**inputs(shard)))
            on_done(shard)
        return
    if shards:
        check_workers()
    futures = {shard: named(shard).submit(**inputs(shard)) for shard in shards}
    failed = []
    for shard, future in futures.items():
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 -- collected, registered around, raised below
            failed.append((shard, exc))
            continue
        register(shard, result)
        on_done(shard)
    if failed:
        raise RuntimeError(f"{stage}: {len(failed)} shard(s) failed ({[s for s, _ in failed]}); the others are stored, "
                           f"a rerun computes only these: {failed[0][1]}") from failed[0][1]


_CHECKED: set[str] = set()


def check_workers(timeout_s: float = 120.0) -> None:
    """Before the first shard goes to a cluster: every worker imports glocal's stage modules
    (``flows.worker_setup.check_imports``), else the run stops at once naming the worker and its
    error (a task that cannot be unpickled on a worker would otherwise leave the flow waiting).
    Once per scheduler and process."""
    from prefect.context import FlowRunContext

    from flows.worker_setup import check_imports

    client = FlowRunContext.get().task_runner.client  # prefect-dask's client (started on first use)
    address = client.scheduler.address
    if address in _CHECKED:
        return
    client.wait_for_workers(1, timeout=timeout_s)
    errors = {worker: error for worker, error in client.run(check_imports, on_error="return").items() if error is not None}
    if errors:
        worker, error = next(iter(errors.items()))
        raise RuntimeError(f"{len(errors)} Dask worker(s) cannot import glocal's stages, e.g. {worker}: {error}; install glocal in the "
                           "workers' environment (start remote workers with --preload flows.worker_setup)")
    _CHECKED.add(address)
