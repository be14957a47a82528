"""What a check is: a named, versioned rule over a batch of catalog rows that returns pass/fail, a score and a reason.

A check never decides how it is run: the runner (curation.jobs.run) reads the rows it asks for, batches them,
times them and writes the results. Scores are stored once; thresholds are applied when querying.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from curation.query.results import RESULT_SCHEMA
from curation.query.severity import SEVERITIES, UNSTATED, WARNING

# What every check returns for the rows it applies to (the runner adds check_name, check_version, run_id).
# ``severity`` may be left NULL: a failure then takes its check's ``severity``.
OUTCOME_SCHEMA = pa.schema(
    [("sample_id", pa.string()), ("passed", pa.bool_()), ("score", pa.float64()), ("reason", pa.string()),
     ("severity", pa.string())]
)
FAMILIES = ("format", "media", "geometry", "consistency", "duplicates", "contamination", "model")
# How a check spends its time; the bench and the default selection group checks by it.
COSTS = ("rule", "media", "embedding", "model")


class RunCancelled(Exception):
    """The run was cancelled (or its worker told to stop) while a check was working."""


@dataclass(frozen=True)
class Outcome:
    """One row's verdict. ``score`` is the check's measurement (None when none makes sense); ``severity`` a
    failure's, when it is not the check's own (curation.query.severity)."""

    passed: bool
    score: float | None = None
    reason: str | None = None
    severity: str | None = None


@dataclass
class CheckContext:
    """What a check may use while it runs: an in-memory DuckDB for SQL over Arrow, and the run's parameters."""

    params: dict[str, Any] = field(default_factory=dict)
    con: duckdb.DuckDBPyConnection | None = None
    _bound: pa.Table | None = field(default=None, repr=False)  # the table registered as ``batch`` now

    def duckdb(self) -> duckdb.DuckDBPyConnection:
        if self.con is None:
            self.con = duckdb.connect()
            self.con.execute(f"SET threads = {int(self.params.get('duckdb_threads', 2))}")
        return self.con

    def bind(self, batch: pa.Table) -> duckdb.DuckDBPyConnection:
        """The connection with ``batch`` registered as the relation ``batch``: once per batch, not once per check
        (a registration costs about a millisecond and a run has ~20 checks). It stays registered until the next."""
        con = self.duckdb()
        if self._bound is not batch:  # the reference held here keeps the identity of a live table unique
            con.register("batch", batch)
            self._bound = batch
        return con


@dataclass
class GlobalContext:
    """What a cross-sample check may use: the read-only catalog, the run's parameters, a shared text embedder."""

    catalog: duckdb.DuckDBPyConnection
    params: dict[str, Any] = field(default_factory=dict)
    heartbeat: Callable[[], bool] | None = None  # returns False when the run was cancelled
    progress: Callable[[float], None] | None = None  # hears how far the running check is (0..1 of its work)
    cache: dict[str, Any] = field(default_factory=dict)  # shared by the checks of one run (benchmarks read once)
    _embedder: Any = None

    def catalog_table(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        return self.catalog.sql(sql, params=params or None).to_arrow_table()

    def catalog_batches(self, sql: str, params: list[Any] | None = None,
                        batch_rows: int = 200_000) -> Iterator[pa.RecordBatch]:
        yield from self.catalog.sql(sql, params=params or None).to_arrow_reader(batch_rows)

    def embedder(self):
        """The text embedder of this run (MiniLM unless params['embedder'] names another), loaded once."""
        if self._embedder is None:
            from curation.checks.embeddings import get_embedder

            self._embedder = get_embedder(self.params.get("embedder"))
        return self._embedder

    def alive(self) -> None:
        """Tell the job we are alive; raises RunCancelled when the run was cancelled meanwhile."""
        if self.heartbeat is not None and not self.heartbeat():
            raise RunCancelled("the check run was cancelled")

    def advance(self, fraction: float) -> None:
        """Tell the job how far this check has come (0..1 of its work), for a check that works a long time before
        its first outcomes (embedding every question); raises RunCancelled like alive()."""
        if self.progress is not None:
            self.progress(fraction)
        self.alive()


class Check:
    """Base class. Subclasses set the class attributes and implement :meth:`run` (or use a helper base below)."""

    name: ClassVar[str]  # family.name
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    applies_to: ClassVar[str] = "all samples"  # the sample kinds it applies to, in words (the UI shows it)
    columns: ClassVar[tuple[str, ...]] = ("sample_id",)  # catalog columns it reads
    scope: ClassVar[str] = "row"  # row: per shard batch; global: over the whole catalog at once
    cost: ClassVar[str] = "rule"
    needs_gpu: ClassVar[bool] = False
    default: ClassVar[bool] = True  # part of a run when no --checks are named
    score_meaning: ClassVar[str] = ""  # what the score measures (higher is not always better)
    # A failure's severity unless its outcome names another: error breaks training, warning doubts quality, info is
    # a known quirk the catalog normalised (curation.query.severity).
    severity: ClassVar[str] = WARNING
    # Measurements a check stores per sample beside RESULT_SCHEMA's columns, apart from its verdict (the model check's
    # answers and pass rate); they follow the outcome columns in its run() output.
    measurements: ClassVar[pa.Schema | None] = None

    def __init__(self, params: dict[str, Any] | None = None):
        self.params = dict(params or {})

    @classmethod
    def family(cls) -> str:
        return cls.name.split(".", 1)[0]

    def run(self, batch: pa.Table, ctx: CheckContext) -> pa.Table:
        """Outcomes (OUTCOME_SCHEMA) for the rows of ``batch`` the check applies to; other rows are left out."""
        raise NotImplementedError

    def close(self) -> None:
        """Free what the check holds (a model); called once after the run."""


class SqlCheck(Check):
    """A check written as one DuckDB SELECT over the relation ``batch`` (alias it ``s``), vectorised.

    ``query`` returns ``sample_id, passed, score, reason`` for the rows the check applies to.
    """

    query: ClassVar[str]

    def sql(self) -> str:
        """The SELECT to run (override to build it from parameters)."""
        return self.query

    def tables(self) -> dict[str, pa.Table]:
        """Extra relations the query joins (a table of priors)."""
        return {}

    def run(self, batch: pa.Table, ctx: CheckContext) -> pa.Table:
        con = ctx.bind(batch)
        for name, table in self.tables().items():
            con.register(name, table)
        return conform(con.sql(self.sql()).to_arrow_table())


class RowCheck(Check):
    """A check in Python, one row at a time, on the rows a SQL predicate ``where`` lets through (None: all).

    ``fast_pass`` (optional SQL) marks rows that clearly pass, decided in SQL for the whole batch; only the rest reach
    :meth:`check`. It must agree with :meth:`check` on those rows (the tests hold it to that).
    """

    where: ClassVar[str | None] = None
    fast_pass: ClassVar[str | None] = None
    fast_score: ClassVar[str] = "NULL"

    def check(self, row: dict[str, Any]) -> Outcome | None:
        """The outcome for one row (a dict of the declared columns), or None when the check does not apply."""
        raise NotImplementedError

    def rows(self, batch: pa.Table, ctx: CheckContext) -> list[dict[str, Any]]:
        """The rows :meth:`check` must look at: ``where`` holds and ``fast_pass`` does not."""
        if self.where is None and self.fast_pass is None:
            return batch.select(list(self.columns)).to_pylist()
        cols = ", ".join(f"s.{c}" for c in self.columns)
        slow = f"NOT coalesce({self.fast_pass}, FALSE)" if self.fast_pass else "TRUE"
        sql = f"SELECT {cols} FROM batch s WHERE ({self.where or 'TRUE'}) AND {slow}"
        return ctx.bind(batch).sql(sql).to_arrow_table().to_pylist()

    def fast_outcomes(self, batch: pa.Table, ctx: CheckContext) -> pa.Table | None:
        """Outcomes of the rows ``fast_pass`` decides, straight from SQL (no Python per row)."""
        if self.fast_pass is None:
            return None
        return conform(ctx.bind(batch).sql(
            f"SELECT s.sample_id, TRUE AS passed, ({self.fast_score})::DOUBLE AS score, NULL::VARCHAR AS reason "
            f"FROM batch s WHERE ({self.where or 'TRUE'}) AND coalesce({self.fast_pass}, FALSE)"
        ).to_arrow_table())

    def checked(self, rows: Iterable[dict[str, Any]]) -> list[tuple[str, Outcome]]:
        """(sample_id, outcome) for each row ``check`` decides."""
        return [(row["sample_id"], outcome) for row in rows if (outcome := self.check(row)) is not None]

    def run(self, batch: pa.Table, ctx: CheckContext) -> pa.Table:
        slow = outcome_table(self.checked(self.rows(batch, ctx)))
        fast = self.fast_outcomes(batch, ctx)
        return slow if fast is None else pa.concat_tables([fast, slow])


class BatchCheck(RowCheck):
    """A Python check that wants many rows at once (a model batches them)."""

    def check_batch(self, rows: list[dict[str, Any]]) -> list[Outcome | None]:
        raise NotImplementedError

    def run(self, batch: pa.Table, ctx: CheckContext) -> pa.Table:
        rows = self.rows(batch, ctx)
        outcomes = self.check_batch(rows) if rows else []
        return outcome_table([(r["sample_id"], o) for r, o in zip(rows, outcomes) if o is not None])


class GlobalCheck(Check):
    """A cross-sample check (duplicates, contamination): it sees the whole catalog through a GlobalContext."""

    scope: ClassVar[str] = "global"

    def run_global(self, gctx: Any) -> Iterator[pa.Table]:
        """Yield OUTCOME_SCHEMA tables covering every sample the check applies to."""
        raise NotImplementedError

    def run(self, batch: pa.Table, ctx: CheckContext) -> pa.Table:
        raise TypeError(f"{self.name} is a global check: run it with run_global over the whole catalog")


def outcome_table(decided: Sequence[tuple[str, Outcome]]) -> pa.Table:
    """(sample_id, outcome) pairs from Python checks as an OUTCOME_SCHEMA table."""
    return pa.table(
        [
            [sample_id for sample_id, _ in decided],
            [bool(o.passed) for _, o in decided],
            [None if o.score is None else float(o.score) for _, o in decided],
            [o.reason for _, o in decided],
            [o.severity for _, o in decided],
        ],
        schema=OUTCOME_SCHEMA,
    )


def conform(table: pa.Table, keep: Sequence[str] = ()) -> pa.Table:
    """Cast a check's output to OUTCOME_SCHEMA (SQL may give int scores or NULL-typed columns); a check that says no
    severity gets a NULL one (its failures take the check's)."""
    cols = []
    for f in OUTCOME_SCHEMA:
        if f.name not in table.column_names:
            if f.name == "severity":
                cols.append(pa.nulls(table.num_rows, f.type))
                continue
            raise ValueError(f"check output lacks column {f.name!r} (has {table.column_names})")
        cols.append(table.column(f.name).cast(f.type))
    out = pa.table(cols, schema=OUTCOME_SCHEMA)
    for column in keep:  # a check's own measurements beside the outcome (Check.measurements)
        if column in table.column_names:
            out = out.append_column(table.schema.field(column), table.column(column))
    return out


def with_check_columns(outcomes: pa.Table, name: str, version: str, run_id: str,
                       severity: str | None = None) -> pa.Table:
    """OUTCOME_SCHEMA -> RESULT_SCHEMA (curation.query.results layout). A failure keeps the severity its outcome
    names, else takes ``severity`` (by default the registered check's); a pass has none."""
    n = outcomes.num_rows
    registered = _registered(name)
    outcomes = conform(outcomes, registered.measurements.names if registered and registered.measurements else ())
    default = severity or (registered.severity if registered is not None else UNSTATED)
    stated = outcomes.column("severity")
    bad = set(pc.unique(stated.drop_null()).to_pylist()) - set(SEVERITIES)
    if bad:
        raise ValueError(f"check {name}: severity {sorted(bad)} is not one of {', '.join(SEVERITIES)}")
    failed = pc.invert(outcomes.column("passed").fill_null(False))
    table = pa.table(
        [
            outcomes.column("sample_id"),
            pa.repeat(pa.scalar(name, pa.string()), n),
            pa.repeat(pa.scalar(version, pa.string()), n),
            outcomes.column("passed"),
            outcomes.column("score"),
            outcomes.column("reason"),
            pa.repeat(pa.scalar(run_id, pa.string()), n),
            pc.if_else(failed, stated.fill_null(default), pa.scalar(None, pa.string())),
        ],
        schema=RESULT_SCHEMA,
    )
    for column in outcomes.column_names[len(OUTCOME_SCHEMA):]:  # kept after RESULT_SCHEMA's columns (conform)
        table = table.append_column(outcomes.schema.field(column), outcomes.column(column))
    return table


def check_severity(name: str) -> str:
    """The severity of a registered check's failures (UNSTATED for a name the registry does not know)."""
    check = _registered(name)
    return check.severity if check is not None else UNSTATED


def _registered(name: str) -> type[Check] | None:
    from curation.checks.registry import load_all  # late: the registry imports this module

    return load_all().get(name)


@lru_cache(maxsize=1)
def catalog_schema() -> pa.Schema:
    """The Arrow schema of the catalog's samples table (built from db.catalog's DDL, no file needed)."""
    from db.catalog import DDL

    con = duckdb.connect()
    con.execute(DDL[0])
    schema = con.sql("SELECT * FROM samples LIMIT 0").to_arrow_table().schema
    con.close()
    return schema


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Catalog-shaped Arrow table from row dicts (missing columns are NULL): for tests and ad-hoc runs."""
    schema = catalog_schema()
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)
