"""The sweep's results: one SQLite database per output folder (WAL mode), one row per finished run.

Safety comes from SQLite's transactions, not from our code: a run and its FID history are inserted in one
transaction, so a process killed at any moment (kill -9 included) leaves either the whole run or nothing; the
UNIQUE cell key plus INSERT OR IGNORE makes a second sweep on the same folder skip what the first has written;
busy_timeout lets two writers take turns instead of failing.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from empirical.config import TrainConfig, config_from_dict
from empirical.errors import EmpiricalInputError
from empirical.train import EvalPoint, RunResult

SCHEMA = "ttur-sweep/1"
DB_NAME = "sweep.db"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    batch_size INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    lr_scale REAL NOT NULL,
    optimizer TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('reached', 'not_reached', 'settled', 'diverged')),
    steps_to_target INTEGER,
    sfo INTEGER,
    steps_run INTEGER NOT NULL,
    diverged_at INTEGER,
    best_fid REAL,
    final_fid REAL,
    lr_d REAL NOT NULL,
    lr_g REAL NOT NULL,
    target_fid REAL NOT NULL,
    n_eval INTEGER NOT NULL,
    wall_seconds REAL NOT NULL,
    device TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    config TEXT NOT NULL,
    UNIQUE (batch_size, seed, lr_scale, optimizer)
);
CREATE TABLE IF NOT EXISTS history (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    fid REAL, loss_d REAL, loss_g REAL, grad_norm_d REAL, grad_norm_g REAL, balance_ratio REAL,
    seconds REAL, modes INTEGER, high_quality REAL,
    grad_sq_d REAL, grad_sq_g REAL, vi_gap_d REAL, vi_gap_g REAL,
    PRIMARY KEY (run_id, step)
);
"""
_HISTORY_FIELDS = [f.name for f in fields(EvalPoint)]
# history columns added after sweep folders had been written: nullable, so old rows read back as None
MEASURE_COLUMNS = ("grad_sq_d", "grad_sq_g", "vi_gap_d", "vi_gap_g")
# Config fields that do not change a run's trajectory, only what it records: runs with and without them belong
# in one folder (an lqgan folder made before measuring existed resumes with today's measuring preset).
RECORDING_FIELDS = ("measure_batch",)


@dataclass(frozen=True, order=True)
class Cell:
    """One point of a sweep grid; the key of a run in the store."""

    batch_size: int
    seed: int
    lr_scale: float = 1.0
    optimizer: str = "adam"

    def config(self, base: TrainConfig) -> TrainConfig:
        """The run's config: the sweep's base config at this batch size and optimizer, with α_D, α_G × lr_scale.

        α_D, α_G are the base's lr_table entry for this optimizer when it has a table, else its lr_d, lr_g. The
        run's config states the resolved rates with lr_table None (lr_scale moves them off the table's values);
        the folder's base config keeps the table's name.
        """
        lr_d, lr_g = base.rates_for(self.optimizer)
        return base.with_(batch_size=self.batch_size, optimizer=self.optimizer, lr_table=None,
                          lr_d=lr_d * self.lr_scale, lr_g=lr_g * self.lr_scale)


@dataclass(frozen=True)
class RunRow:
    """A finished run as stored (history not included)."""

    id: int
    cell: Cell
    status: str
    steps_to_target: int | None
    sfo: int | None
    steps_run: int
    diverged_at: int | None
    best_fid: float | None
    final_fid: float | None
    lr_d: float
    lr_g: float
    wall_seconds: float
    device: str


def _base_key(config: TrainConfig) -> dict:
    """What must match for runs to belong in one folder: everything but the grid's own axes. (A stored config is
    read with :func:`config_from_dict`, so a field added since the folder was made compares at its default.)"""
    d = config.to_dict()
    for name in ("batch_size", "optimizer", *RECORDING_FIELDS):
        d.pop(name)
    return d


def _finite(x: float) -> float | None:
    return x if x is not None and math.isfinite(x) else None


class Store:
    """A sweep folder's database. Open with :func:`open_store` (writes) or :func:`read_store` (report)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        # A folder opened read-only is not migrated: columns it lacks read back as None (NULL).
        self._history_columns = {r[1] for r in connection.execute("PRAGMA table_info(history)")}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata -----------------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def base_config(self) -> TrainConfig:
        """The config the folder was made for (fields added since take their defaults)."""
        return config_from_dict(json.loads(self.meta("base_config")))

    def targets(self) -> list[float]:
        """The FID targets the folder's runs are read at, loosest first; the last is the base config's target_fid,
        the one the runs stopped by. A one-target folder (every folder made before --targets) has just that one."""
        stored = self.meta("targets")
        return [self.base_config().target_fid] if stored is None else json.loads(stored)

    # -- runs ---------------------------------------------------------------------------------------------------
    def finished(self) -> set[Cell]:
        rows = self._db.execute("SELECT batch_size, seed, lr_scale, optimizer FROM runs").fetchall()
        return {Cell(*row) for row in rows}

    def add(self, cell: Cell, result: RunResult) -> bool:
        """Insert a finished run and its history in one transaction; False if the cell was already there."""
        fids = [p.fid for p in result.history if math.isfinite(p.fid)]
        c = result.config
        with self._transaction():
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO runs (batch_size, seed, lr_scale, optimizer, status, steps_to_target, sfo, "
                "steps_run, diverged_at, best_fid, final_fid, lr_d, lr_g, target_fid, n_eval, wall_seconds, device, "
                "finished_at, config) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cell.batch_size, cell.seed, cell.lr_scale, cell.optimizer, result.status, result.steps_to_target,
                 result.sfo, result.steps_run, result.diverged_at, min(fids) if fids else None,
                 _finite(result.history[-1].fid) if result.history else None, c.lr_d, c.lr_g, c.target_fid,
                 c.n_eval, result.wall_seconds, result.device, datetime.now(UTC).isoformat(timespec="seconds"),
                 json.dumps(c.to_dict(), sort_keys=True)),
            )
            if cursor.rowcount == 0:
                return False
            run_id = cursor.lastrowid
            self._db.executemany(
                f"INSERT INTO history (run_id, {', '.join(_HISTORY_FIELDS)}) "
                f"VALUES (?, {', '.join('?' * len(_HISTORY_FIELDS))})",
                [(run_id, *(getattr(p, name) for name in _HISTORY_FIELDS)) for p in result.history],
            )
        return True

    def runs(self) -> list[RunRow]:
        rows = self._db.execute(
            "SELECT id, batch_size, seed, lr_scale, optimizer, status, steps_to_target, sfo, steps_run, diverged_at, "
            "best_fid, final_fid, lr_d, lr_g, wall_seconds, device FROM runs "
            "ORDER BY optimizer, lr_scale, batch_size, seed"
        ).fetchall()
        return [RunRow(r[0], Cell(*r[1:5]), *r[5:]) for r in rows]

    def history(self, run_id: int) -> list[EvalPoint]:
        rows = self._db.execute(
            f"SELECT {self._history_select('')} FROM history WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()
        # SQLite stores NaN as NULL; the float fields get their NaN back, modes/high_quality stay None.
        floats = {"fid", "loss_d", "loss_g", "grad_norm_d", "grad_norm_g", "balance_ratio", "seconds"}
        return [EvalPoint(**{k: math.nan if v is None and k in floats else v
                             for k, v in zip(_HISTORY_FIELDS, r, strict=True)}) for r in rows]

    def _history_select(self, prefix: str) -> str:
        """The history columns in EvalPoint's order, NULL for those an old read-only folder lacks."""
        return ", ".join(f"{prefix}{name}" if name in self._history_columns else f"NULL AS {name}"
                         for name in _HISTORY_FIELDS)

    # -- export -------------------------------------------------------------------------------------------------
    def export_csv(self, folder: Path) -> list[Path]:
        """Tidy CSV: runs.csv (one row per run) and history.csv (one row per run and evaluation)."""
        out = []
        for name, query in (
            ("runs.csv", "SELECT * FROM runs ORDER BY optimizer, lr_scale, batch_size, seed"),
            ("history.csv", "SELECT r.batch_size, r.seed, r.lr_scale, r.optimizer, h.run_id, "
                            f"{self._history_select('h.')} FROM history h "
                            "JOIN runs r ON r.id = h.run_id ORDER BY r.optimizer, r.lr_scale, r.batch_size, r.seed, "
                            "h.step"),
        ):
            cursor = self._db.execute(query)
            path = folder / name
            temporary = path.with_name(path.name + ".tmp")
            with temporary.open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow([d[0] for d in cursor.description])
                writer.writerows(cursor)
            temporary.replace(path)
            out.append(path)
        return out

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rwc'}"
    connection = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None)
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def _check_existing(path: Path) -> None:
    """Refuse, without writing anything, a file that is not a readable sweep database."""
    try:
        with closing(_connect(path, read_only=True)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"meta", "runs", "history"} <= tables:
                raise EmpiricalInputError(f"{path} is an SQLite file but not a sweep database; choose another --out")
            schema = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if schema is None or schema[0] != SCHEMA:
                raise EmpiricalInputError(f"{path} has schema {schema and schema[0]!r}, expected {SCHEMA!r}")
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise EmpiricalInputError(f"{path} is damaged (PRAGMA quick_check failed); move it away or restore it")
    except sqlite3.DatabaseError as error:
        raise EmpiricalInputError(f"{path} is not a readable sweep database ({error}); move it away or "
                                  "choose another --out") from None


def _allow_settled(db: sqlite3.Connection) -> None:
    """Let a folder made before the status "settled" existed store it: rebuild its runs table with today's CHECK
    (SQLite cannot alter a constraint; this is its documented 12-step table rebuild, run in one transaction, with
    foreign keys off so that dropping the old table does not cascade into the history)."""
    sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()[0]
    if "'settled'" in sql:
        return
    start, end = _TABLES.index("CREATE TABLE IF NOT EXISTS runs"), _TABLES.index("CREATE TABLE IF NOT EXISTS history")
    create = _TABLES[start:end]
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(create.replace("IF NOT EXISTS runs", "runs_rebuilt"))
            db.execute("INSERT INTO runs_rebuilt SELECT * FROM runs")
            db.execute("DROP TABLE runs")
            db.execute("ALTER TABLE runs_rebuilt RENAME TO runs")
            if db.execute("PRAGMA foreign_key_check").fetchall():
                raise sqlite3.IntegrityError("history rows lost their run while rebuilding the runs table")
        except BaseException:
            db.rollback()
            raise
        db.commit()
    finally:
        db.execute("PRAGMA foreign_keys = ON")


def _add_measure_columns(db: sqlite3.Connection) -> None:
    """Give a folder made before the theory's measures were recorded their history columns (nullable REAL: its
    old rows read None). ALTER TABLE ADD COLUMN changes only the schema, so this is instant and keeps every row."""
    present = {r[1] for r in db.execute("PRAGMA table_info(history)")}
    for name in MEASURE_COLUMNS:
        if name not in present:
            db.execute(f"ALTER TABLE history ADD COLUMN {name} REAL")


def normalise_targets(targets: Iterable[float], base: TrainConfig) -> list[float]:
    """Several FID targets as a folder keeps them: distinct, loosest first, the tightest equal to base.target_fid
    (the one the runs stop by). A one-line error for a target that is not a positive finite number."""
    given = list(targets)
    values = sorted({float(t) for t in given}, reverse=True)
    if not values or not all(math.isfinite(t) and t > 0 for t in values):
        raise EmpiricalInputError(f"targets must be positive finite numbers, got {given or 'none'}")
    if values[-1] != base.target_fid:
        raise EmpiricalInputError(f"the tightest target {values[-1]:g} must be the config's target_fid "
                                  f"{base.target_fid:g}: the runs stop by it")
    return values


def _targets_text(targets: Sequence[float]) -> str:
    return ",".join(f"{t:g}" for t in targets)


def open_store(folder: str | Path, base: TrainConfig, preset: str,
               targets: Iterable[float] | None = None) -> Store:
    """Open (creating if needed) the store of a sweep folder for `base`; refuse a folder made for another config.

    `targets`: several FID targets read from the same runs (:func:`normalise_targets`; None: base.target_fid
    alone). A folder keeps them in its meta table under "targets" only when there are several, so a one-target
    folder is written exactly as before; resuming with other targets than the folder's is refused.
    """
    folder = Path(folder)
    wanted = normalise_targets(targets if targets is not None else [base.target_fid], base)
    if folder.exists() and not folder.is_dir():
        raise EmpiricalInputError(f"--out {folder} exists and is not a folder")
    path = folder / DB_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Creating the file, switching it to WAL and writing `meta` must not interleave between two sweeps
        # started together: a second opener could see a half-made file, and SQLite answers a journal-mode
        # change under contention with "database is locked" without waiting. A lock file serialises this
        # one-off step; the runs themselves are serialised by SQLite's own transactions.
        with FileLock(folder / f"{DB_NAME}.lock", timeout=120):
            if path.exists():
                _check_existing(path)
            db = _connect(path, read_only=False)
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(_TABLES)
            _allow_settled(db)
            _add_measure_columns(db)
            store = Store(path, db)
            with store._transaction():  # the first sweep to get here names the folder's config and targets
                if store.meta("base_config") is None:
                    db.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("schema", SCHEMA), ("preset", preset),
                        ("base_config", json.dumps(base.to_dict(), sort_keys=True)),
                        *([("targets", json.dumps(wanted))] if len(wanted) > 1 else []),
                    ])
    except Timeout:
        raise EmpiricalInputError(f"another process has held {folder}/{DB_NAME}.lock for 120 s; "
                                  "is a sweep stuck creating the database?") from None
    except (OSError, sqlite3.Error) as error:
        raise EmpiricalInputError(f"cannot create the sweep database in {folder}: {error}") from None
    old, new = _base_key(store.base_config()), _base_key(base)
    if old != new:
        changed = [f"{k} {old[k]!r} -> {new[k]!r}" for k in old if old[k] != new[k]]
        store.close()
        raise EmpiricalInputError(f"{folder} holds a sweep of another config ({'; '.join(changed)}); "
                                  "use another --out or the same settings")
    if (held := store.targets()) != wanted:
        store.close()
        words = f"targets {_targets_text(held)}" if len(held) > 1 else f"the one target {held[0]:g}"
        raise EmpiricalInputError(f"{folder} holds a sweep for {words}, not {_targets_text(wanted)}; resume it with "
                                  f"--targets {_targets_text(held)}, or use another --out")
    return store


def read_store(folder: str | Path) -> Store:
    """Open a sweep folder read-only (for the report)."""
    path = Path(folder) / DB_NAME
    if not path.is_file():
        raise EmpiricalInputError(f"{folder} holds no sweep ({DB_NAME} not found); run python -m empirical.sweep first")
    _check_existing(path)
    return Store(path, _connect(path, read_only=True))
