"""Model registration: skops only, an allow-list of types, hashes checked on every load."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import scipy.stats
import skops.io as sio
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from rest_framework.test import APIClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from decisions.model_artifacts import UntrustedArtifact, model_version_load
from governance import services
from governance.artifacts import ArtifactIntegrityError
from governance.exceptions import ValidationFailed
from governance.hashing import version_hash
from governance.models import AuditEvent, Item, Version

pytestmark = pytest.mark.django_db


def test_registration_stores_artifact_and_describes_the_estimator(register_model, maker):
    version = register_model(maker)
    assert version.status == "draft"
    stored = Path(settings.ARTIFACT_ROOT) / version.artifact_path
    assert stored.is_file() and version.artifact_size == stored.stat().st_size
    assert version.content["estimator"]["class"] == "sklearn.pipeline.Pipeline"
    assert [s["name"] for s in version.content["estimator"]["steps"]] == ["prepare", "classify"]
    assert version.content_hash == version_hash(version.content, version.artifact_sha256)
    assert version.content_hash != version_hash(version.content, None)  # the file counts
    estimator = model_version_load(version)
    assert hasattr(estimator, "predict_proba")


def test_tampered_artifact_is_refused_on_load(register_model, maker):
    version = register_model(maker)
    stored = Path(settings.ARTIFACT_ROOT) / version.artifact_path
    os.chmod(stored, 0o640)
    stored.write_bytes(stored.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError) as refused:
        model_version_load(version)
    assert refused.value.code == "artifact_tampered"


def test_a_tampered_file_is_found_by_the_full_check_not_on_every_audit_page_view(
    register_model, maker, auditor
):
    """The audit trail page re-hashes every event and sealed content on each view, but not
    model files (up to 200 MiB each): the daily check and the API's verify do."""
    version = services.version_submit(actor=maker, version=register_model(maker))
    stored = Path(settings.ARTIFACT_ROOT) / version.artifact_path
    os.chmod(stored, 0o640)
    stored.write_bytes(stored.read_bytes() + b"\0")
    api = APIClient()
    api.force_authenticate(auditor)
    full = api.get("/api/v1/audit/verify/").json()
    assert full["ok"] is False and any("artifact" in p for p in full["problems"]), full
    page = Client()
    page.force_login(auditor)
    text = page.get("/audit/").content.decode()
    assert "The audit chain verifies." in text
    assert "Model files are re-hashed by the daily check" in text


def _register_file(actor, path: Path, content: dict):
    with open(path, "rb") as handle:
        return services.version_create(
            actor=actor, kind="model", name="m", content=content, artifact=handle
        )


def test_pickle_and_non_skops_files_are_refused_without_loading(trained_model, maker, tmp_path):
    path, content = trained_model
    estimator = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(estimator))
    with pytest.raises(UntrustedArtifact) as refused:
        _register_file(maker, pickled, content)
    assert "not a skops file" in refused.value.message
    text = tmp_path / "notes.skops"
    text.write_text("hello")
    with pytest.raises(UntrustedArtifact):
        _register_file(maker, text, content)
    assert not Version.objects.exists() and not Item.objects.exists()


def test_untrusted_types_are_named_and_refused(trained_model, maker, tmp_path):
    _, content = trained_model
    hostile = make_pipeline(FunctionTransformer(os.system), LogisticRegression())
    path = tmp_path / "hostile.skops"
    sio.dump(hostile, path)
    with pytest.raises(UntrustedArtifact) as refused:
        _register_file(maker, path, content)
    assert "posix.system" in refused.value.message or "nt.system" in refused.value.message
    assert not Version.objects.exists()
    staging = Path(settings.ARTIFACT_ROOT) / "staging"
    assert not any(staging.iterdir())  # the upload was not kept


def _code_running_distribution(path: Path, marker: Path) -> None:
    """A skops file of SciPy's normal distribution whose ``__setstate__`` would ``exec``
    a line that writes ``marker``: SciPy's module prefix does not make a type safe."""
    sio.dump(scipy.stats.norm, path)
    with zipfile.ZipFile(path) as original:
        files = {name: original.read(name) for name in original.namelist()}
    schema = json.loads(files["schema.json"])
    payload = f"open({str(marker)!r}, 'w').write('ran')\n"

    def plant(node: object) -> None:
        if isinstance(node, dict):
            template = node.get("_parse_arg_template")
            if isinstance(template, dict) and "content" in template:
                template["content"] = json.dumps(payload + json.loads(template["content"]))
            for value in node.values():
                plant(value)
        elif isinstance(node, list):
            for value in node:
                plant(value)

    plant(schema)
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as hostile:
        for name, data in files.items():
            hostile.writestr(name, data)


def test_a_scipy_type_that_runs_code_when_loaded_is_refused_before_loading(
    trained_model, maker, tmp_path
):
    _, content = trained_model
    path, marker = tmp_path / "norm.skops", tmp_path / "ran"
    _code_running_distribution(path, marker)
    with pytest.raises(UntrustedArtifact) as refused:
        _register_file(maker, path, content)
    assert "scipy.stats._continuous_distns.norm_gen" in refused.value.message
    assert not marker.exists()  # refused by name, never loaded
    assert not Version.objects.exists()
    # The file is hostile indeed: skops would run the line if the type were trusted.
    sio.load(path, trusted=sio.get_untrusted_types(file=path))
    assert marker.read_text() == "ran"


def test_schema_must_name_the_estimators_columns(trained_model, maker):
    path, content = trained_model
    content["schema"] = [f for f in content["schema"] if f["name"] != "region"]
    del content["reason_codes"]["region"]
    content["reference_sample"] = {
        "columns": [c for c in content["reference_sample"]["columns"] if c != "region"],
        "rows": [row[:-1] for row in content["reference_sample"]["rows"]],
    }
    with pytest.raises(ValidationFailed) as invalid:
        _register_file(maker, path, content)
    assert "schema" in invalid.value.details


def test_every_feature_needs_a_reason_code_and_values_fit_the_schema(trained_model, maker):
    path, content = trained_model
    del content["reason_codes"]["income"]
    content["reason_codes"]["region"]["factor"] = 7
    content["reason_codes"]["utilisation"]["mood"] = "sad"
    content["reference_sample"]["rows"][0][0] = "lots"
    content["training_data"]["hash"] = "not-a-hash"
    content["colour"] = "blue"
    with pytest.raises(ValidationFailed) as invalid:
        _register_file(maker, path, content)
    details = invalid.value.details
    assert "reason_codes.income" in details
    assert details["reason_codes.region.factor"] == [
        "must be a neutral customer-facing name of the factor, or left out"
    ]
    assert "reason_codes.utilisation.mood" in details
    assert "reference_sample.rows[0].income" in details
    assert "training_data.hash" in details
    assert "colour" in details


def test_rest_upload_is_multipart(trained_model, maker):
    path, content = trained_model
    client = APIClient()
    client.force_authenticate(maker)
    with open(path, "rb") as handle:
        response = client.post(
            "/api/v1/registry/models/take-up/versions/",
            {"artifact": handle, "content": json.dumps(content), "change_note": "first"},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    assert response.json()["artifact_sha256"] == Version.objects.get().artifact_sha256
    missing = client.post(
        "/api/v1/registry/models/take-up/versions/",
        {"content": json.dumps(content)},
        format="multipart",
    )
    assert missing.status_code == 400
    assert "artifact" in missing.json()["error"]["details"]
    # JSON had answered "content: Not a valid string"; it says how to send a model.
    as_json = client.post(
        "/api/v1/registry/models/take-up/versions/", {"content": content}, format="json"
    )
    assert as_json.status_code == 400
    error = as_json.json()["error"]
    assert error["message"].startswith("A model version comes with its file: send multipart")
    assert error["details"] == {"artifact": ["this field is required (multipart/form-data)"]}
    assert Version.objects.count() == 1


def test_register_model_command(trained_model, maker, tmp_path):
    path, content = trained_model
    metadata = tmp_path / "model.json"
    metadata.write_text(json.dumps(content))
    out = io.StringIO()
    call_command(
        "register_model",
        "take-up",
        "--artifact",
        str(path),
        "--content",
        str(metadata),
        "--user",
        maker.username,
        "--submit",
        stdout=out,
    )
    version = Version.objects.get()
    assert version.status == "submitted"
    assert "take-up v1" in out.getvalue()
    with pytest.raises(CommandError, match="not a skops file"):
        call_command(
            "register_model",
            "take-up",
            "--artifact",
            str(metadata),
            "--content",
            str(metadata),
            "--user",
            maker.username,
        )
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"description": "caf\xe9"}')
    with pytest.raises(CommandError, match="Cannot read the content file"):
        call_command(
            "register_model", "take-up", "--artifact", str(path), "--content", str(latin),
            "--user", maker.username,
        )  # fmt: skip


def test_register_model_submit_while_a_version_is_under_review_leaves_no_draft(
    trained_model, maker, tmp_path
):
    path, content = trained_model
    metadata = tmp_path / "model.json"
    metadata.write_text(json.dumps(content))
    arguments = ["register_model", "take-up", "--artifact", str(path), "--content", str(metadata)]
    call_command(*arguments, "--user", maker.username, "--submit", stdout=io.StringIO())
    for _ in range(2):
        with pytest.raises(CommandError) as refused:
            call_command(*arguments, "--user", maker.username, "--submit", stdout=io.StringIO())
        assert str(refused.value).startswith("Version 1 of take-up is already under review")
    assert list(Version.objects.values_list("number", "status")) == [(1, "submitted")]
    assert AuditEvent.objects.filter(action="create").count() == 1


def test_tree_models_register_and_list_the_types_they_needed(trained_model, maker, tmp_path):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from decisions.demo_portfolio import simulated_take_up, synthetic_customers

    _, content = trained_model
    customers = synthetic_customers(600, seed=3)
    numeric = ["income", "utilisation", "months_on_book", "delinquencies"]
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("num", "passthrough", numeric),
                        ("region", OneHotEncoder(handle_unknown="ignore"), ["region"]),
                    ]
                ),
            ),
            ("trees", HistGradientBoostingClassifier(max_iter=20)),
        ]
    ).fit(customers, simulated_take_up(customers))
    path = tmp_path / "trees.skops"
    sio.dump(model, path)
    version = _register_file(maker, path, content)
    assert version.content["estimator"]["trusted_types"] == [
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    ]


def test_models_shap_cannot_explain_are_refused(trained_model, maker, tmp_path):
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from decisions.demo_portfolio import simulated_take_up, synthetic_customers

    _, content = trained_model
    customers = synthetic_customers(400, seed=4)
    numeric = ["income", "utilisation", "months_on_book", "delinquencies"]
    model = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [
                        ("mix", PCA(n_components=2), numeric),
                        ("region", OneHotEncoder(handle_unknown="ignore"), ["region"]),
                    ]
                ),
            ),
            ("classify", LogisticRegression(max_iter=2000)),
        ]
    ).fit(customers, simulated_take_up(customers))
    path = tmp_path / "pca.skops"
    sio.dump(model, path)
    with pytest.raises(ValidationFailed) as refused:
        _register_file(maker, path, content)
    assert refused.value.code == "unexplainable_model"
    assert "PCA" in refused.value.message
    assert not Version.objects.exists()
