"""What a Celery worker does with one chunk of a distributed optimisation run.

A distributed run (``decisions.distributed_runs``) keeps its work in a folder of shared
storage, ``ARTIFACT_ROOT/runs/run-<id>-<attempt>/``:

- ``function.json``: the strategy and constraint-set content and every model version's
  sealed content with its artifact path and SHA-256. A worker compiles the decision
  function from it without the database (model files are checked against their hashes,
  as everywhere).
- ``chunk-<i>/population.parquet``: the chunk's customers, already validated.

Here are the operations a worker runs on a chunk, besides the solver's own
(``engine.distributed.OPERATIONS``):

- ``score``: evaluate every customer on every action at zero prices; store value, use
  and eligibility for the solver (``engine.distributed.chunk_write``) and the predicted
  quantities and failed rules for logging.
- ``finish``: with the final prices and the chunk's choice (``choice.npy``), add up the
  KPIs, count the customers whose price-optimal action is the chosen one, and (if the run
  logs decisions) write the chunk's decision rows, hashed, as PostgreSQL COPY text to
  ``decisions.copy``. The coordinator loads every chunk's file in the one transaction
  that marks the run succeeded.

Nothing here reads or writes the database.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings

from decisions.engine.decision_function import (
    DecisionFunction,
    Evaluation,
    compile_decision_function,
)
from decisions.engine.distributed import OPERATIONS as SOLVER_OPERATIONS
from decisions.engine.distributed import chunk_choice, chunk_write, save_replacing
from decisions.populations import ID_COLUMN, Population
from governance.models import Version

BUNDLE = "function.json"
POPULATION = "population.parquet"
EXTRAS = "evaluation.npz"
STAGED = "decisions.copy"
RUNS = "runs"

_lock = threading.Lock()
_functions: dict[str, DecisionFunction] = {}


def runs_root() -> Path:
    return Path(settings.ARTIFACT_ROOT) / RUNS


class ChunkFolderMissing(Exception):
    """This worker cannot see a run's folder: it does not share the coordinator's artifact
    storage (``ARTIFACT_ROOT``). Raised in the worker; the coordinator gets it back through
    the result backend and fails the run saying so."""


def checked_directory(directory: str) -> Path:
    """``directory``, refused unless it lies under the runs folder of the artifact root
    (a task message names it; a worker reads and writes nothing else) and exists here."""
    path = Path(directory).resolve()
    root = runs_root().resolve()
    machine = socket.gethostname()
    if root not in path.parents:
        raise ChunkFolderMissing(
            f"{directory} is not a run folder under the artifact root of machine {machine} "
            f"({root.parent})"
        )
    if not path.is_dir():
        raise ChunkFolderMissing(
            f"{directory} does not exist on machine {machine}: its artifact root "
            f"({root.parent}) is not the storage the run's folder was written to"
        )
    return path


# --- the decision function, without the database --------------------------------------------


def bundle_write(folder: Path, strategy: Version, constraint_set: Version) -> None:
    """Store what compiling the run's decision function needs (the coordinator's side)."""
    from decisions.runtime import _version

    models = []
    for prediction in strategy.content.get("predictions", []):
        ref = prediction["model"]
        version = _version("model", ref)
        models.append(
            {
                "name": ref["name"],
                "version": int(ref["version"]),
                "key": f"{version.item.name} v{version.number}",
                "content": version.content,
                "content_hash": version.content_hash,
                "artifact_path": version.artifact_path,
                "artifact_sha256": version.artifact_sha256,
            }
        )
    bundle = {
        "strategy": strategy.content,
        "constraints": constraint_set.content,
        "models": models,
    }
    (folder / BUNDLE).write_text(json.dumps(bundle, sort_keys=True))


def bundle_function(folder: Path) -> DecisionFunction:
    """The run's decision function, compiled once per process per bundle."""
    from decisions.runtime import model_runtime_of

    text = (folder / BUNDLE).read_bytes()
    key = hashlib.sha256(text).hexdigest()
    cached = _functions.get(key)
    if cached is not None:
        return cached
    bundle = json.loads(text)
    runtimes = {
        (m["name"], m["version"]): model_runtime_of(
            key=m["key"],
            content=m["content"],
            content_hash=m["content_hash"],
            artifact_path=m["artifact_path"],
            artifact_sha256=m["artifact_sha256"],
        )
        for m in bundle["models"]
    }
    function = compile_decision_function(
        strategy=bundle["strategy"], constraints=bundle["constraints"], runtimes=runtimes
    )
    with _lock:
        return _functions.setdefault(key, function)


# --- populations ----------------------------------------------------------------------------


def population_write(path: Path, population: Population, rows: slice) -> None:
    frame = pd.DataFrame(
        {
            ID_COLUMN: population.customer_ids[rows],
            **{name: values[rows] for name, values in population.columns.items()},
        }
    )
    frame.to_parquet(path, index=False)


def population_load(path: Path, function: DecisionFunction) -> Population:
    """A chunk's population as the coordinator validated it (numbers as float64, categories
    as text)."""
    frame = pd.read_parquet(path)
    columns = {}
    for name, spec in function.features.items():
        if spec["type"] == "numeric":
            columns[name] = frame[name].to_numpy(dtype=np.float64)
        else:
            columns[name] = frame[name].to_numpy(dtype=object)
    return Population(customer_ids=[str(v) for v in frame[ID_COLUMN]], columns=columns)


# --- the operations -------------------------------------------------------------------------


def chunk_score(directory: str) -> dict[str, Any]:
    from decisions.optimisation import evaluate_population

    folder = checked_directory(directory)
    function = bundle_function(folder.parent)
    population = population_load(folder / POPULATION, function)
    result = evaluate_population(function, population)
    chunk_write(folder, result.value, result.usage, result.eligible)
    quantities = list(result.quantities)
    rules = list(result.failed_rules)
    save_replacing(
        folder / EXTRAS,
        lambda handle: np.savez(
            handle,
            allow_pickle=False,
            names=np.array(json.dumps({"quantities": quantities, "rules": rules})),
            **{f"q{i}": result.quantities[q] for i, q in enumerate(quantities)},
            **{f"r{i}": result.failed_rules[r] for i, r in enumerate(rules)},
        ),
    )
    return {"n": population.size}


def _evaluation(folder: Path, prices: np.ndarray, function: DecisionFunction) -> Evaluation:
    from decisions.optimisation import at_prices

    value = np.load(folder / "value.npy", allow_pickle=False)
    usage = np.load(folder / "usage.npy", allow_pickle=False)
    eligible = np.load(folder / "allowed.npy", allow_pickle=False)
    with np.load(folder / EXTRAS, allow_pickle=False) as extras:
        names = json.loads(str(extras["names"]))
        quantities = {q: extras[f"q{i}"] for i, q in enumerate(names["quantities"])}
        rules = {r: extras[f"r{i}"] for i, r in enumerate(names["rules"])}
    zero = Evaluation(
        action_ids=list(function.action_ids),
        quantities=quantities,
        value=value,
        usage=usage,
        eligible=eligible,
        failed_rules=rules,
        prices=np.zeros(function.m),
        score=value,
        choice=np.zeros(len(value), dtype=np.int64),
    )
    return at_prices(zero, prices)


def chunk_finish(
    directory: str, prices: list[float], common: dict[str, Any] | None
) -> dict[str, Any]:
    """KPI sums and agreement of the chunk at its final choice; with ``common`` (the fields
    every decision of the run shares) also the chunk's decision rows, staged as COPY text."""
    from decisions.optimisation import kpi_sums, log_rows

    folder = checked_directory(directory)
    function = bundle_function(folder.parent)
    priced = _evaluation(folder, np.asarray(prices, dtype=np.float64), function)
    choice = chunk_choice(folder)
    out: dict[str, Any] = {
        "kpis": kpi_sums(function, priced, choice),
        "agree": int(np.sum(priced.choice == choice)),
        "logged": 0,
    }
    if common is not None:
        population = population_load(folder / POPULATION, function)

        def stage(handle: Any) -> None:
            # A redelivered (or resent) task never leaves half a file behind.
            for batch in log_rows(function, common, population, priced, choice):
                handle.write("".join(copy_lines(batch)).encode("utf-8"))
                out["logged"] += len(batch)

        save_replacing(folder / STAGED, stage)
    return out


OPERATIONS = {"score": chunk_score, "finish": chunk_finish}


def chunk_operation(operation: str, call: dict[str, Any]) -> dict[str, Any]:
    """Run one operation on one chunk (what the chunk task does)."""
    call = dict(call)
    call["directory"] = str(checked_directory(call["directory"]))
    if operation in OPERATIONS:
        return OPERATIONS[operation](**call)
    if operation in SOLVER_OPERATIONS:
        return SOLVER_OPERATIONS[operation](**call)
    raise ValueError(f"unknown chunk operation {operation!r}")


# --- COPY text ------------------------------------------------------------------------------

# PostgreSQL's text format for COPY: tab-separated columns, \N for NULL, and backslash
# escapes for backslash, tab, newline and carriage return.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value).translate(_ESCAPES)


def copy_lines(batch: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Rows from ``optimisation.log_rows`` as lines of COPY text in ``COLUMNS`` order."""
    from decisions.optimisation import COLUMNS, JSON_COLUMNS

    for row in batch:
        texts = row["_texts"]
        yield (
            "\t".join(
                texts[c].decode().translate(_ESCAPES) if c in JSON_COLUMNS else _copy_text(row[c])
                for c in COLUMNS
            )
            + "\n"
        )


def copy_fields(line: str) -> list[str | None]:
    """One line of COPY text back to its fields (for databases without COPY)."""
    out: list[str | None] = []
    for field in line.rstrip("\n").split("\t"):
        if field == "\\N":
            out.append(None)
            continue
        if "\\" not in field:
            out.append(field)
            continue
        chars, i = [], 0
        while i < len(field):
            if field[i] == "\\" and i + 1 < len(field):
                chars.append(_UNESCAPES.get(field[i + 1], field[i + 1]))
                i += 2
            else:
                chars.append(field[i])
                i += 1
        out.append("".join(chars))
    return out


def run_folder(run_id: int, attempt: int) -> Path:
    return runs_root() / f"run-{run_id}-{attempt}-{uuid.uuid4().hex[:8]}"


__all__ = [
    "OPERATIONS",
    "ChunkFolderMissing",
    "bundle_function",
    "bundle_write",
    "checked_directory",
    "chunk_operation",
    "copy_fields",
    "copy_lines",
    "population_load",
    "population_write",
    "run_folder",
    "runs_root",
]
