"""What a model version holds besides its skops file, and the checks made at registration.

Content::

    {
      "description": "...",
      "schema": [feature, ...],                        # decisions.feature_schema
      "output": {"type": "probability", "positive_class": 1} | {"type": "regression"},
      "metrics": {"auc": 0.71, ...},
      "training_data": {"rows": 50000, "period": {"start": "2025-01-01", "end": "2025-12-31"},
                        "hash": "<sha256 of the training extract>"},
      "reference_sample": {"columns": [...], "rows": [[...], ...]},
      "reason_codes": {"<feature>": {"code": "R01", "text": "customer-facing sentence",
                                     "factor": "neutral name, for decisions not adverse"}},
      "estimator": {...}                                # filled in at registration
    }

Registration loads the file through the allow-list, checks that the schema names the
estimator's own input columns, and predicts the reference sample: a model that cannot
score its own reference data is refused before anyone reviews it.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import numpy as np

from decisions.feature_schema import feature_list_validate, value_problem
from decisions.model_artifacts import estimator_load, untrusted_types
from governance.exceptions import ValidationFailed
from governance.validation import FieldErrors, is_finite_number

MAX_REFERENCE_ROWS = 20_000
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
OUTPUT_TYPES = ("probability", "regression")


def model_content_validate(content: dict[str, Any], *, artifact: Path | None) -> dict[str, Any]:
    """Validate a model version's content against its artifact; returns the normalised content.

    Raises ``ValidationFailed`` (field-level details) or ``UntrustedArtifact``.
    """
    errors = FieldErrors()
    errors.check_keys(
        content,
        "",
        required=("schema", "output", "training_data", "reference_sample", "reason_codes"),
        optional=("description", "metrics", "estimator"),
    )
    schema = feature_list_validate(content.get("schema"), "schema", errors)
    output = _output_validate(content.get("output"), errors)
    metrics = _metrics_validate(content.get("metrics", {}), errors)
    training = _training_validate(content.get("training_data"), errors)
    reasons = _reason_codes_validate(content.get("reason_codes"), schema, errors)
    reference = _reference_validate(content.get("reference_sample"), schema, errors)
    errors.raise_if_any("The model version is not valid")

    if artifact is None:
        raise ValidationFailed(
            "A model version needs its skops file.", details={"artifact": ["required"]}
        )
    estimator = estimator_load(artifact)
    described = _estimator_check(estimator, schema, output, reference, errors)
    # What a reviewer should know: the types beyond skops' defaults this file needed.
    described["trusted_types"] = sorted(untrusted_types(artifact))
    errors.raise_if_any("The model file does not match its description")
    described["explainer"] = _explainer_check(estimator, content, schema, output, reference)
    errors.raise_if_any("The model file does not match its description")

    normalised: dict[str, Any] = {
        "description": str(content.get("description", "")),
        "schema": schema,
        "output": output,
        "metrics": metrics,
        "training_data": training,
        "reference_sample": reference,
        "reason_codes": reasons,
        "estimator": described,
    }
    return normalised


def _explainer_check(
    estimator: Any,
    content: dict[str, Any],
    schema: list[dict[str, Any]],
    output: dict[str, Any],
    reference: dict[str, Any],
) -> str:
    """Every decision must be explainable: refuse a model SHAP cannot explain exactly."""
    from decisions.engine.explain import UnsupportedModel, explainer_for
    from decisions.engine.predictors import ModelRuntime

    runtime = ModelRuntime.from_content(
        key="candidate",
        estimator=estimator,
        content={
            "schema": schema,
            "output": output,
            "reference_sample": reference,
            "reason_codes": content.get("reason_codes", {}),
        },
    )
    try:
        return explainer_for(runtime).method
    except UnsupportedModel as exc:
        raise ValidationFailed(
            f"Decisions made with this model could not be explained: {exc}",
            code="unexplainable_model",
            details={"artifact": [str(exc)]},
        ) from None


def _output_validate(raw: Any, errors: FieldErrors) -> dict[str, Any]:
    if not errors.check_keys(raw, "output", required=("type",), optional=("positive_class",)):
        return {}
    if raw.get("type") not in OUTPUT_TYPES:
        errors.add("output.type", "must be 'probability' or 'regression'")
        return {}
    out = {"type": raw["type"]}
    if raw["type"] == "probability":
        positive = raw.get("positive_class", 1)
        if not isinstance(positive, int | str) or isinstance(positive, bool):
            errors.add("output.positive_class", "must be a class label (integer or string)")
        out["positive_class"] = positive
    elif "positive_class" in raw:
        errors.add("output.positive_class", "only probability outputs have a positive class")
    return out


def _metrics_validate(raw: Any, errors: FieldErrors) -> dict[str, float]:
    if not isinstance(raw, dict):
        errors.add("metrics", "must be an object of name: number")
        return {}
    for name, value in raw.items():
        if not is_finite_number(value):
            errors.add(f"metrics.{name}", "must be a finite number")
    return dict(raw)


def _training_validate(raw: Any, errors: FieldErrors) -> dict[str, Any]:
    if not errors.check_keys(
        raw, "training_data", required=("rows", "period", "hash"), optional=("source",)
    ):
        return {}
    rows = raw.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows <= 0:
        errors.add("training_data.rows", "must be a positive integer")
    if not isinstance(raw.get("hash"), str) or not SHA256_HEX.match(raw["hash"]):
        errors.add("training_data.hash", "must be a lower-case SHA-256 hex digest")
    period = raw.get("period")
    if errors.check_keys(period, "training_data.period", required=("start", "end")):
        dates = {}
        for end in ("start", "end"):
            try:
                dates[end] = dt.date.fromisoformat(str(period.get(end)))
            except ValueError:
                errors.add(f"training_data.period.{end}", "must be a date (YYYY-MM-DD)")
        if len(dates) == 2 and dates["start"] > dates["end"]:
            errors.add("training_data.period", "start is after end")
    return dict(raw)


def _reason_codes_validate(
    raw: Any, schema: list[dict[str, Any]], errors: FieldErrors
) -> dict[str, dict[str, str]]:
    if not isinstance(raw, dict):
        errors.add("reason_codes", "must be an object of feature: {code, text}")
        return {}
    names = {f["name"] for f in schema}
    codes: dict[str, str] = {}
    for feature, entry in raw.items():
        where = f"reason_codes.{feature}"
        if schema and feature not in names:
            errors.add(where, "is not a feature of the schema")
        if not errors.check_keys(entry, where, required=("code", "text"), optional=("factor",)):
            continue
        code, text = entry.get("code"), entry.get("text")
        if not isinstance(code, str) or not code.strip():
            errors.add(f"{where}.code", "must be a non-empty string")
        elif code in codes:
            errors.add(f"{where}.code", f"code {code!r} is also used by {codes[code]!r}")
        else:
            codes[code] = feature
        if not isinstance(text, str) or not text.strip():
            errors.add(f"{where}.text", "must be a customer-facing sentence")
        factor = entry.get("factor")
        if factor is not None and (not isinstance(factor, str) or not factor.strip()):
            errors.add(
                f"{where}.factor",
                "must be a neutral customer-facing name of the factor, or left out",
            )
    for missing in sorted(names - raw.keys()):
        errors.add(f"reason_codes.{missing}", "every feature needs a reason code and text")
    return dict(raw)


def _reference_validate(
    raw: Any, schema: list[dict[str, Any]], errors: FieldErrors
) -> dict[str, Any]:
    if not errors.check_keys(raw, "reference_sample", required=("columns", "rows")):
        return {}
    columns, rows = raw.get("columns"), raw.get("rows")
    names = [f["name"] for f in schema]
    if not isinstance(columns, list) or sorted(map(str, columns)) != sorted(names):
        errors.add("reference_sample.columns", "must list exactly the schema's features")
        return {}
    if not isinstance(rows, list) or not rows:
        errors.add("reference_sample.rows", "must be a non-empty list of rows")
        return {}
    if len(rows) > MAX_REFERENCE_ROWS:
        errors.add("reference_sample.rows", f"at most {MAX_REFERENCE_ROWS} rows")
        return {}
    by_name = {f["name"]: f for f in schema}
    reported = 0
    for r, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            errors.add(f"reference_sample.rows[{r}]", f"must be a list of {len(columns)} values")
            reported += 1
        else:
            for column, value in zip(columns, row, strict=True):
                problem = value_problem(by_name[column], value) if value is not None else None
                if problem:
                    errors.add(f"reference_sample.rows[{r}].{column}", problem)
                    reported += 1
        if reported >= 20:  # enough to show the pattern without a megabyte of errors
            break
    return {"columns": list(columns), "rows": rows}


def reference_frame(content: dict[str, Any]) -> Any:
    """The reference sample as a DataFrame in the estimator's column order."""
    import pandas as pd

    sample = content["reference_sample"]
    frame = pd.DataFrame(sample["rows"], columns=sample["columns"])
    for feature in content["schema"]:
        if feature["type"] == "numeric":
            frame[feature["name"]] = frame[feature["name"]].astype("float64")
        else:
            frame[feature["name"]] = frame[feature["name"]].astype("object")
    return frame


def _estimator_check(
    estimator: Any,
    schema: list[dict[str, Any]],
    output: dict[str, Any],
    reference: dict[str, Any],
    errors: FieldErrors,
) -> dict[str, Any]:
    import sklearn

    names = [f["name"] for f in schema]
    declared = getattr(estimator, "feature_names_in_", None)
    if declared is None:
        errors.add(
            "artifact",
            "the estimator was not fitted on named columns (fit it on a pandas DataFrame)",
        )
        return {}
    declared = [str(c) for c in declared]
    if sorted(declared) != sorted(names):
        errors.add(
            "schema",
            "must name exactly the estimator's input columns: " + ", ".join(declared),
        )
        return {}

    frame = reference_frame({"schema": schema, "reference_sample": reference})[declared]
    description: dict[str, Any] = {
        "class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
        "input_columns": declared,
        "sklearn_version": sklearn.__version__,
    }
    if hasattr(estimator, "steps"):
        description["steps"] = [
            {"name": name, "class": type(step).__qualname__} for name, step in estimator.steps
        ]
    try:
        if output["type"] == "probability":
            if not hasattr(estimator, "predict_proba"):
                errors.add("output.type", "the estimator has no predict_proba")
                return description
            classes = [c.item() if hasattr(c, "item") else c for c in estimator.classes_]
            if len(classes) != 2 or output["positive_class"] not in classes:
                errors.add(
                    "output.positive_class",
                    f"must be one of the estimator's two classes {classes}",
                )
                return description
            predicted = estimator.predict_proba(frame)[:, classes.index(output["positive_class"])]
            description["classes"] = classes
        else:
            predicted = np.asarray(estimator.predict(frame), dtype="float64")
    except Exception as exc:  # the model cannot score its own reference data
        errors.add("reference_sample", f"the estimator failed on it: {type(exc).__name__}: {exc}")
        return description
    if not np.all(np.isfinite(predicted)):
        errors.add("reference_sample", "the estimator gives non-finite predictions on it")
    return description
