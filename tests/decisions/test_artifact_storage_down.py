"""File storage that cannot take an upload: a sentence and nothing created, never a 500.

The storage here is really unusable: ``ARTIFACT_ROOT`` lies under a regular file, so the
first directory the upload needs cannot be made (as with a volume that is not mounted or
is read-only). A full disk answers 507 rather than 503; that mapping is checked on the
error itself, because filling a real disk is not something a test should do (it was
tried by hand on a 6 MB tmpfs: see the closing note of issue 4).
"""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from decisions.demo_setup import demo_load
from decisions.models import Decision, OptimisationRun, RunStatus
from decisions.optimisation import optimisation_run_create, optimisation_run_execute
from decisions.populations import population_simulated
from governance.artifacts import ArtifactStorageFull, ArtifactStorageUnavailable, _storage_error
from governance.models import Version

pytestmark = pytest.mark.django_db


@pytest.fixture
def maker():
    demo_load()
    return get_user_model().objects.get(username="maker")


@pytest.fixture
def storage_unusable(settings, tmp_path: Path) -> Path:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the storage's folder should be")
    settings.ARTIFACT_ROOT = str(blocker / "artifacts")
    return blocker


def campaign_csv() -> io.BytesIO:
    upload = io.BytesIO(population_simulated("cross-sell", 50, seed=4).to_csv(index=False).encode())
    upload.name = "campaign.csv"
    return upload


def test_a_population_upload_the_storage_cannot_take_is_503_and_creates_no_run(
    maker, storage_unusable
):
    client = APIClient()
    client.force_authenticate(maker)
    before = OptimisationRun.objects.count()
    response = client.post(
        "/api/v1/optimisation-runs/",
        {"population": campaign_csv(), "deployment": "cross-sell"},
        format="multipart",
    )
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "artifact_storage_unavailable"
    assert "file storage could not be written" in error["message"]
    assert "nothing was created" in error["message"]
    assert OptimisationRun.objects.count() == before


def test_the_run_page_shows_the_storage_problem_as_a_message(maker, storage_unusable):
    browser = Client()
    browser.force_login(maker)
    response = browser.post(
        reverse("ui:run-start"),
        {"deployment": "cross-sell", "population": campaign_csv()},
        follow=True,
    )
    assert response.status_code == 200
    assert "file storage could not be written" in response.content.decode()
    assert not OptimisationRun.objects.exists()


def test_a_model_upload_the_storage_cannot_take_creates_no_version(
    register_model, maker, storage_unusable
):
    before = Version.objects.count()
    with pytest.raises(ArtifactStorageUnavailable) as refused:
        register_model(maker)
    assert refused.value.status == 503
    assert Version.objects.count() == before


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_507_and_says_so(number):
    error = _storage_error(OSError(number, "No space left on device"))
    assert isinstance(error, ArtifactStorageFull)
    assert (error.status, error.code) == (507, "artifact_storage_full")
    assert error.message.startswith("The server's file storage is full")


def test_a_chunked_run_whose_storage_fails_ends_failed_with_a_sentence(maker, settings, tmp_path):
    run = optimisation_run_create(
        actor=maker, deployment="cross-sell", simulated={"customers": 2000}, enqueue=False
    )
    settings.OPTIMISATION_DISTRIBUTED = "on"  # chunks in this process, files in the storage
    settings.OPTIMISATION_CHUNK_CUSTOMERS = 700
    # The models and the population stay readable; the runs' working folder cannot be made.
    storage = tmp_path / "storage"
    storage.mkdir()
    (storage / "sha256").symlink_to(Path(settings.ARTIFACT_ROOT) / "sha256")
    (storage / "runs").write_text("a file where the runs' folder should be")
    settings.ARTIFACT_ROOT = str(storage)
    run = optimisation_run_execute(run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("The run could not write or read its working files")
    assert "Not a directory" in run.error
    assert not Decision.objects.filter(run=run).exists()
