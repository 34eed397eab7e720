"""Domain errors of the monitoring app (each with a stable code and an HTTP status)."""

from __future__ import annotations

from typing import Any

from governance.exceptions import DomainError, ValidationFailed


class OutcomeFileUnreadable(ValidationFailed):
    """An outcome file that cannot be read as CSV or Parquet, or lacks required columns."""

    code = "outcome_file_unreadable"


class TooManyOutcomes(ValidationFailed):
    """A batch larger than one request may carry; split it."""

    code = "batch_too_large"


class OutcomesUnavailable(DomainError):
    """The outcomes could not be written; none of the batch was stored, retrying is safe."""

    code = "outcomes_unavailable"
    status = 503


class OutcomeFileInterrupted(OutcomesUnavailable):
    """A file whose outcomes stopped being stored midway: the batches before the failure
    are stored (``report``, a ``FileReport`` of them), the rest is not. Re-running the
    file loads the rest; what is stored comes back as duplicates, never twice."""

    code = "outcome_file_interrupted"

    def __init__(self, message: str, *, report: Any) -> None:
        super().__init__(message)
        self.report = report
