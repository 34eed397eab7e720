"""PostgreSQL triggers that make the audit trail append-only and sealed versions immutable.

Even a process holding the application's database credentials cannot then rewrite
history with an UPDATE or DELETE: audit events refuse both; a version past draft refuses
any change of its content, hash, artifact or identity, refuses deletion, and may only move
along the lifecycle table. (A superuser can drop triggers; ``verify_audit`` still detects
what they then change.) SQLite, the demo default, has no such guard.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION governance_refuse_audit_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'governance_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS governance_auditevent_append_only ON governance_auditevent;
CREATE TRIGGER governance_auditevent_append_only
    BEFORE UPDATE OR DELETE ON governance_auditevent
    FOR EACH ROW EXECUTE FUNCTION governance_refuse_audit_change();

CREATE OR REPLACE FUNCTION governance_guard_version() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'version % of item % is %: it cannot be deleted',
                OLD.number, OLD.item_id, OLD.status
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status <> 'draft' AND (
        NEW.content IS DISTINCT FROM OLD.content
        OR NEW.content_hash IS DISTINCT FROM OLD.content_hash
        OR NEW.artifact_path IS DISTINCT FROM OLD.artifact_path
        OR NEW.artifact_sha256 IS DISTINCT FROM OLD.artifact_sha256
        OR NEW.item_id IS DISTINCT FROM OLD.item_id
        OR NEW.number IS DISTINCT FROM OLD.number
        OR NEW.author_id IS DISTINCT FROM OLD.author_id
    ) THEN
        RAISE EXCEPTION 'version % of item % is %: its content is sealed',
            OLD.number, OLD.item_id, OLD.status
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
        (OLD.status = 'draft' AND NEW.status = 'submitted')
        OR (OLD.status = 'submitted' AND NEW.status IN ('approved', 'rejected'))
        OR (OLD.status = 'approved' AND NEW.status IN ('active', 'retired'))
        OR (OLD.status = 'active' AND NEW.status = 'retired')
    ) THEN
        RAISE EXCEPTION 'version % of item %: % -> % is not a lifecycle move',
            OLD.number, OLD.item_id, OLD.status, NEW.status
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS governance_version_guard ON governance_version;
CREATE TRIGGER governance_version_guard
    BEFORE UPDATE OR DELETE ON governance_version
    FOR EACH ROW EXECUTE FUNCTION governance_guard_version();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS governance_version_guard ON governance_version;
DROP FUNCTION IF EXISTS governance_guard_version();
DROP TRIGGER IF EXISTS governance_auditevent_append_only ON governance_auditevent;
DROP FUNCTION IF EXISTS governance_refuse_audit_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # No parameters: psycopg sends it as one simple query, $$-bodies and all.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("governance", "0002_roles")]

    operations = [migrations.RunPython(forward, backward)]
