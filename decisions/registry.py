"""The three governed kinds of the decisions app, registered with governance."""

from __future__ import annotations

from governance.kinds import Kind, register_kind


def register_kinds() -> None:
    from decisions import (
        constraint_sets,
        content_diff,
        content_presenters,
        deployments,
        model_versions,
        strategies,
    )

    register_kind(
        Kind(
            key="model",
            live_uses=deployments.model_versions_in_use,
            slug="models",
            label="model",
            validate=model_versions.model_content_validate,
            has_artifact=True,
            artifact_suffix=".skops",
            before_retire=deployments.version_check_not_in_use,
            present=content_presenters.model_present,
            diff=content_diff.model_changes,
        )
    )
    register_kind(
        Kind(
            key="strategy",
            live_uses=deployments.strategy_versions_in_use,
            slug="strategies",
            label="strategy",
            validate=strategies.strategy_content_validate,
            before_submit=strategies.strategy_check_models_reviewable,
            before_approve=strategies.strategy_check_models_approved,
            before_activate=strategies.strategy_check_models_approved,
            before_retire=deployments.version_check_not_in_use,
            present=content_presenters.strategy_present,
            diff=content_diff.strategy_changes,
        )
    )
    register_kind(
        Kind(
            key="constraint_set",
            live_uses=deployments.constraint_set_versions_in_use,
            slug="constraint-sets",
            label="constraint set",
            validate=constraint_sets.constraint_set_content_validate,
            before_retire=deployments.version_check_not_in_use,
            present=content_presenters.constraint_set_present,
            diff=content_diff.constraint_set_changes,
        )
    )
    register_kind(
        Kind(
            key="deployment",
            slug="deployments",
            label="deployment",
            validate=deployments.deployment_content_validate,
            naming="the channel downstream systems decide on (onboarding)",
            before_submit=deployments.deployment_check_versions_reviewable,
            before_approve=deployments.deployment_check_versions_approved,
            before_activate=deployments.deployment_check_versions_approved,
            retiring_active=(
                "real-time decisions on the channel {name} stop at once (clients get 404 "
                "deployment_not_found)"
            ),
            activating="live decisions on channel {name} switch to v{number} at once",
            present=content_presenters.deployment_present,
            diff=content_diff.deployment_changes,
        )
    )
