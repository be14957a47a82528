"""The Ray engine: the same checks over Ray Data (map_batches), on a local Ray or a cluster (--address).

The driver reads shard rows from the catalog (a local DuckDB file the cluster cannot see), hands them to Ray Data as
Arrow blocks, and gets outcomes back; it writes the Parquet parts and unit markers itself, so the run's layout, resume
and cancel behave exactly as with the local engine. CPU checks run as stateless tasks (an actor pool that takes every
CPU deadlocks Ray Data on small machines); checks that need a GPU (the model check) run in one actor that asks for a
GPU when the cluster has one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curation.checks.base import CheckContext, with_check_columns
from curation.checks.model import ReAnswer
from curation.checks.runner import (
    CheckStats,
    ShardResult,
    ShardTask,
    instantiate,
    run_checks_on,
    shard_columns,
    write_part,
)
from curation.jobs.engines.ray_llm import reanswer_chunk, vllm_installed
from curation.query.results import RESULT_SCHEMA
from db.catalog import open_catalog

log = logging.getLogger(__name__)
UNIT = "__unit"
REPO_ROOT = Path(__file__).resolve().parents[3]
_CACHE: dict[tuple, list] = {}


def _checks_for(names: tuple[str, ...], params: dict[str, Any]) -> list:
    key = (names, repr(sorted(params.items())))
    if key not in _CACHE:
        _CACHE[key] = instantiate(names, params)
    return _CACHE[key]


def _outcomes_with_units(batch: pa.Table, checks: list, ctx: CheckContext, run_id: str) -> pa.Table:
    units = batch.column(UNIT)
    rows = batch.drop_columns([UNIT])
    tables = []
    for name, out in run_checks_on(rows, checks, ctx).items():
        if not out.num_rows:
            continue
        check = next(c for c in checks if c.name == name)
        where = pc.index_in(out.column("sample_id"), value_set=rows.column("sample_id"))
        table = with_check_columns(out, check.name, check.version, run_id)
        tables.append(table.append_column(UNIT, pc.take(units, where)))
    if not tables:
        return RESULT_SCHEMA.append(pa.field(UNIT, pa.string())).empty_table()
    return pa.concat_tables(tables)


def check_batch(batch: pa.Table, names: tuple[str, ...], params: dict[str, Any], run_id: str) -> pa.Table:
    """Ray Data task: outcomes of the named row checks on one block, tagged with each row's shard."""
    return _outcomes_with_units(batch, _checks_for(names, params), CheckContext(dict(params)), run_id)


class ModelActor:
    """Ray Data actor for checks that load a model once (GPU when the cluster has one)."""

    def __init__(self, names: tuple[str, ...], params: dict[str, Any], run_id: str):
        self.checks = instantiate(names, params)
        self.ctx = CheckContext(dict(params))
        self.run_id = run_id

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _outcomes_with_units(batch, self.checks, self.ctx, self.run_id)


class RayEngine:
    """Runs ShardTasks on Ray Data; shards go in chunks of about ``chunk_rows`` rows, each chunk one dataset."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None, chunk_rows: int = 500_000,
                 batch_rows: int = 20_000):
        import ray

        self.ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "ignore_reinit_error": True}
            if address:
                # A cluster's workers get our code shipped; a local Ray finds it on PYTHONPATH.
                import curation
                import db

                kwargs["runtime_env"] = {"py_modules": [os.path.dirname(curation.__file__),
                                                        os.path.dirname(db.__file__)]}
                ray.init(address=address, **kwargs)
            else:
                path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
                ray.init(num_cpus=num_cpus or os.cpu_count(), runtime_env={"env_vars": {"PYTHONPATH": path}},
                         **kwargs)
            self._started = True
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        self.chunk_rows = chunk_rows
        self.batch_rows = batch_rows

    def map_shards(self, tasks: list[ShardTask], on_rows: Callable[[int], None] | None = None) -> Iterator[ShardResult]:
        chunk: list[ShardTask] = []
        rows = 0
        for task in tasks:
            chunk.append(task)
            rows += task.unit.rows
            if rows >= self.chunk_rows:
                yield from self._run_chunk(chunk)
                chunk, rows = [], 0
        if chunk:
            yield from self._run_chunk(chunk)

    def _read(self, chunk: list[ShardTask], columns: list[str]) -> list[pa.Table]:
        con = open_catalog(chunk[0].catalog_path, read_only=True)
        try:
            blocks = []
            for task in chunk:
                t = con.sql(f"SELECT {', '.join(columns)} FROM samples WHERE source_file = ? ORDER BY row_index",
                            params=[task.unit.source_file]).to_arrow_table()
                blocks.append(t.append_column(UNIT, pa.array([task.unit.key] * t.num_rows, pa.string())))
            return blocks
        finally:
            con.close()

    def _run_chunk(self, chunk: list[ShardTask]) -> Iterator[ShardResult]:
        started = time.perf_counter()
        first = chunk[0]
        checks = instantiate(first.checks, first.params)
        cpu = tuple(c.name for c in checks if not c.needs_gpu and c.cost != "model")
        model = tuple(c.name for c in checks if c.needs_gpu or c.cost == "model")
        blocks = self._read(chunk, shard_columns(checks))
        for c in checks:
            c.close()
        ds = self.ray.data.from_arrow(blocks)
        outputs = []
        if cpu:
            outputs.append(ds.map_batches(check_batch, batch_format="pyarrow", batch_size=self.batch_rows,
                                          fn_kwargs={"names": cpu, "params": first.params, "run_id": first.run_id}))
        measured = {c.name: c.measurements.names for c in checks if c.measurements is not None}
        gpus = self.ray.cluster_resources().get("GPU", 0)
        resources = {"num_gpus": 1} if gpus else {"num_cpus": 0.5}
        answered = []
        if ReAnswer.name in model:  # through Ray Data's LLM processor where vLLM can run (engines.ray_llm)
            answered.append(reanswer_chunk(blocks, first.params, first.run_id, self.ray.data,
                                           use_vllm=bool(gpus) and vllm_installed(), resources=resources))
            model = tuple(n for n in model if n != ReAnswer.name)
        if model:
            outputs.append(ds.map_batches(ModelActor, batch_format="pyarrow", batch_size=64, concurrency=1,
                                          fn_constructor_kwargs={"names": model, "params": first.params,
                                                                 "run_id": first.run_id}, **resources))
        results = [pa.concat_tables(self.ray.get(out.to_arrow_refs())) if out is not None else None
                   for out in outputs] + answered
        # A check's measurements (the model check's answers) are columns only its results have.
        nonempty = [r for r in results if r is not None and r.num_rows]
        table = pa.concat_tables(nonempty, promote_options="default") if nonempty else None
        seconds = time.perf_counter() - started
        for task in chunk:
            stats: dict[str, CheckStats] = {}
            if table is not None:
                mine = table.filter(pc.equal(table.column(UNIT), task.unit.key)).drop_columns([UNIT])
                for name in task.checks:
                    part = mine.filter(pc.equal(mine.column("check_name"), name))
                    if part.num_rows:
                        part = part.select([*RESULT_SCHEMA.names, *measured.get(name, ())])
                        write_part(Path(task.out_dir) / name / task.unit.part, part)
                        failed = part.num_rows - int(pc.sum(part.column("passed")).as_py() or 0)
                        stats[name] = CheckStats(part.num_rows, failed, 0.0)
            yield ShardResult(task.unit, stats, seconds / len(chunk))

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False
