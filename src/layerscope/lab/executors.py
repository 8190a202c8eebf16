"""Executors: where the jobs of a grid run (SPEC C13).

One small interface (after Hydra's launcher plugins): an :class:`Executor` takes
:class:`~layerscope.lab.jobs.Job` objects and yields their results as they finish. Four are
registered in :data:`EXECUTORS` (others can be, also through the entry-point group
``layerscope.executors``):

- ``local`` (the default): in this process, one job after the other;
- ``processes``: a local pool of ``jobs`` spawned processes;
- ``dask``: ``dask.distributed``, a ``LocalCluster`` of ``jobs`` single-threaded worker
  processes on loopback, or the scheduler at ``address`` (``tcp://HOST:PORT``);
- ``ray``: ``ray.init(address=...)``, a local Ray on loopback when no address is given.

Dask and Ray are optional (``pip install 'layerscope[dask]'`` / ``'layerscope[ray]'``) and
imported only when chosen. On the local engines every job gets ``threads`` torch threads,
by default the cores divided by ``jobs``, so that the jobs do not oversubscribe the machine;
with an ``address`` the default is 1 thread per job (a Dask worker runs one task per thread,
Ray one per CPU).

A job that raises is a ``"failed"`` result (its run folder's ``status.json`` says why) and the
others go on. A job whose worker process dies (killed, out of memory) is submitted again, up to
``retries`` times: a run resumes from its newest checkpoint, so a retry is safe and its records
equal an uninterrupted run's.

Example:
    >>> ExecutorConfig.create({"name": "processes", "jobs": 2}, jobs=4).jobs   # a flag wins
    4
    >>> ExecutorConfig.create("dask", jobs=0)
    Traceback (most recent call last):
    ...
    layerscope.errors.ConfigError: executor.jobs = 0 must be an int >= 1; executor={'jobs': 1}
    >>> with make_executor("local") as executor:
    ...     [(index, result.status) for index, result in executor.map([])]
    []
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
import os
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from layerscope.errors import ConfigError, ConfigKeyError, MissingDependencyError, fix, toml_lines
from layerscope.lab.jobs import Job, JobResult, failed, lost_worker, run_job
from layerscope.registry import Registry

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorConfig",
    "available_cores",
    "make_executor",
    "run_jobs",
]

#: Executors by name; ``EXECUTORS.register("mine")`` on an :class:`Executor` subclass adds one.
EXECUTORS: Registry = Registry("executor", "layerscope.executors")

JobFunction = Callable[[Job], JobResult]


def available_cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ExecutorConfig:
    """Config key ``executor = {name = "dask", address = "tcp://...", jobs = 4}``; the flags
    ``--executor --address --jobs --threads`` of ``layerscope run`` / ``probe`` override it (a
    flag naming another executor replaces the whole table)."""

    # Registered executor: local (default), processes, dask, ray.
    name: str = "local"
    # Scheduler / cluster to join (dask: tcp://HOST:PORT, ray: HOST:PORT or ray://...); None
    # starts a local one.
    address: str | None = None
    # Jobs at once (pool size, LocalCluster workers, Ray CPUs); default: the available cores.
    jobs: int | None = None
    # torch threads per job; default: cores // jobs locally, 1 on a cluster.
    threads: int | None = None
    # Resubmissions of a job whose worker died.
    retries: int = 2

    @classmethod
    def create(cls, spec: Any = None, **flags: Any) -> ExecutorConfig:
        """From the config key (``None``, a name, a mapping or an ExecutorConfig) and the
        command-line flags (``None`` flags are ignored)."""
        if spec is None:
            values: dict[str, Any] = {}
        elif isinstance(spec, str):
            values = {"name": spec}
        elif isinstance(spec, cls):
            values = dataclasses.asdict(spec)
        elif isinstance(spec, Mapping):
            values = dict(spec)
        else:
            raise ConfigError(
                f'executor must be a name or a table such as executor = {{name = "dask", '
                f"jobs = 4}}, got {spec!r}"
            )
        flags = {k: v for k, v in flags.items() if v is not None}
        if flags.get("name", values.get("name")) != values.get("name"):
            values = {}  # another engine: the config's address and jobs were meant for its own
        values |= flags
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" Did you mean 'executor.{close[0]}'?" if close else ""
                raise ConfigKeyError(
                    f"unknown key 'executor.{key}'.{hint} Keys: {', '.join(names)}."
                )
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        EXECUTORS.get(self.name)  # an unknown name fails with suggestions
        for key, minimum, flag in (("jobs", 1, "--jobs N"), ("threads", 1, None),
                                   ("retries", 0, None)):  # fmt: skip
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                where = fix(python=f"executor={{'{key}': {minimum}}}", config=toml_lines(f"executor.{key}", minimum),
                            cli=flag.replace("N", str(minimum)) if flag else None)  # fmt: skip
                raise ConfigError(
                    f"executor.{key} = {value!r} must be an int >= {minimum}; {where}"
                )
        if self.address is not None and self.name not in ("dask", "ray"):
            raise ConfigError(
                f"executor {self.name!r} runs on this machine and takes no address; use dask "
                f"or ray, "
                + fix(
                    python=f"executor={{'name': 'dask', 'address': {self.address!r}}}",
                    config=toml_lines("executor.name", "dask", address=self.address),
                    cli=f"--executor dask --address {self.address}",
                )
            )
        if self.name == "local" and self.jobs not in (None, 1):
            raise ConfigError(
                f"executor 'local' runs one job at a time; for {self.jobs} at once use processes, "
                + fix(
                    python=f"executor={{'name': 'processes', 'jobs': {self.jobs}}}",
                    config=toml_lines("executor.name", "processes", jobs=self.jobs),
                    cli=f"--executor processes --jobs {self.jobs}",
                )
            )


class Executor:
    """Runs jobs somewhere; subclasses write :meth:`map` (and :meth:`close` if they hold
    resources). Use as a context manager."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config
        self.jobs = config.jobs or available_cores()

    @property
    def threads(self) -> int | None:
        """torch threads per job (``None``: leave them as they are)."""
        if self.config.threads is not None:
            return self.config.threads
        return 1 if self.config.address else max(1, available_cores() // self.jobs)

    def prepare(self, job: Job) -> Job:
        """The job as this executor sends it: its threads set (progress bars only locally)."""
        threads = job.threads if job.threads is not None else self.threads
        return dataclasses.replace(job, threads=threads, progress=False)

    def map(
        self, jobs: Sequence[Job], fn: JobFunction = run_job
    ) -> Iterator[tuple[int, JobResult]]:
        """``(index, result)`` of every job, as they finish."""
        raise NotImplementedError

    def close(self) -> None:
        """Release workers, clusters and connections this executor started."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """In this process, one job after the other (progress bars shown)."""

    @property
    def threads(self) -> int | None:
        return self.config.threads

    def prepare(self, job: Job) -> Job:
        return dataclasses.replace(job, threads=job.threads or self.threads)

    def map(self, jobs, fn=run_job):
        for index, job in enumerate(jobs):
            yield index, fn(self.prepare(job))


@EXECUTORS.register("processes")
class ProcessesExecutor(Executor):
    """A pool of ``jobs`` spawned processes on this machine."""

    def map(self, jobs, fn=run_job):
        import concurrent.futures as cf
        import multiprocessing

        workers = max(1, min(self.jobs, len(jobs)))
        queue = deque((i, self.prepare(job)) for i, job in enumerate(jobs))
        attempts: Counter[int] = Counter()
        running: dict[cf.Future, tuple[int, Job]] = {}
        pool = None
        try:
            while queue or running:
                if pool is None:
                    context = multiprocessing.get_context("spawn")
                    pool = cf.ProcessPoolExecutor(workers, mp_context=context)
                while queue and len(running) < workers:
                    index, job = queue.popleft()
                    running[pool.submit(fn, job)] = (index, job)
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                broken = any(isinstance(f.exception(), cf.process.BrokenProcessPool) for f in done)
                if broken:  # the pool is gone: every job still running comes back too
                    done = set(cf.wait(running).done)
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = None
                for future in done:
                    index, job = running.pop(future)
                    if not isinstance(future.exception(), cf.process.BrokenProcessPool):
                        yield index, future.result()
                        continue
                    attempts[index] += 1
                    if attempts[index] > self.config.retries:
                        yield index, lost_worker(job, attempts[index], "a pool process ended")
                    else:
                        queue.appendleft((index, job))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def _optional(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f"executor {extra!r} needs the {module!r} package, which cannot be imported "
            f"({error}); install the extra: pip install 'layerscope[{extra}]'"
        ) from None


@EXECUTORS.register("dask")
class DaskExecutor(Executor):
    """dask.distributed: the scheduler at ``address``, or a LocalCluster of ``jobs``
    single-threaded worker processes on 127.0.0.1 (no dashboard)."""

    def __init__(self, config: ExecutorConfig) -> None:
        super().__init__(config)
        distributed = _optional("distributed", "dask")
        self._distributed = distributed
        self.cluster = None
        if config.address is None:
            import dask

            # A worker that dies takes its task along: resubmit it `retries` times.
            with dask.config.set({"distributed.scheduler.allowed-failures": config.retries}):
                self.cluster = distributed.LocalCluster(
                    n_workers=self.jobs, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                )  # fmt: skip
            self.client = distributed.Client(self.cluster)
        else:
            self.client = distributed.Client(config.address)

    def map(self, jobs, fn=run_job):
        prepared = [self.prepare(job) for job in jobs]
        futures = {self.client.submit(fn, job, pure=False): (i, job)
                   for i, job in enumerate(prepared)}  # fmt: skip
        for future in self._distributed.as_completed(futures):
            index, job = futures.pop(future)
            try:
                result = future.result()
                # Forget it now: a result held by a worker that dies later would be recomputed.
                future.release()
                yield index, result
            except self._distributed.KilledWorker as error:
                yield index, lost_worker(job, self.config.retries + 1, str(error).splitlines()[0])
            except Exception as error:  # e.g. the job could not be sent or unpickled
                yield index, failed(job, type(error).__name__, str(error))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Ray: ``ray.init(address=...)``, or a local Ray of ``jobs`` CPUs on 127.0.0.1 (no
    dashboard, no usage statistics) whose workers see this process's ``sys.path``."""

    def __init__(self, config: ExecutorConfig) -> None:
        super().__init__(config)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray = _optional("ray", "ray")
        self._ray = ray
        self._started = not ray.is_initialized()
        if not self._started:
            return
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if config.address is None:
            path = os.pathsep.join(p for p in sys.path if p)
            options |= {"num_cpus": self.jobs, "_node_ip_address": "127.0.0.1",
                        "runtime_env": {"env_vars": {"PYTHONPATH": path}}}  # fmt: skip
        ray.init(address=config.address, **options)

    def map(self, jobs, fn=run_job):
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=self.config.retries)(fn)
        refs = {remote.remote(self.prepare(job)): (i, job) for i, job in enumerate(jobs)}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                index, job = refs.pop(ref)
                try:
                    yield index, ray.get(ref)
                except ray.exceptions.WorkerCrashedError as error:
                    detail = str(error).splitlines()[0]
                    yield index, lost_worker(job, self.config.retries + 1, detail)
                except Exception as error:  # e.g. the job could not be sent or unpickled
                    yield index, failed(job, type(error).__name__, str(error))

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def make_executor(spec: Any = None, **flags: Any) -> Executor:
    """The executor an :class:`ExecutorConfig` (or its config-key form, or a name) describes."""
    config = ExecutorConfig.create(spec, **flags)
    return EXECUTORS.get(config.name)(config)


def run_jobs(
    jobs: Sequence[Job],
    executor: Any = None,
    *,
    fn: JobFunction = run_job,
    report: Callable[[int, JobResult], None] | None = None,
) -> list[JobResult]:
    """Run ``jobs`` on ``executor`` (an Executor, or what :func:`make_executor` takes); the
    results in job order. ``report(index, result)`` is told about each as it finishes."""
    results: list[JobResult | None] = [None] * len(jobs)
    owned = not isinstance(executor, Executor)
    runner = make_executor(executor) if owned else executor
    try:
        for index, result in runner.map(list(jobs), fn):
            results[index] = result
            if report is not None:
                report(index, result)
    finally:
        if owned:
            runner.close()
    return [r for r in results if r is not None]
