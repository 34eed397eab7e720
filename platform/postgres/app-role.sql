-- The application's database role: it logs in, reads and writes rows, and owns nothing.
--
-- The decision log, its blocks and purge records, outcomes and the audit trail are kept
-- append-only by triggers. PostgreSQL lets a table's owner or a superuser switch those off
-- (ALTER TABLE ... DISABLE TRIGGER, DROP TRIGGER, SET session_replication_role = replica),
-- so they only hold against whoever has the application's credentials when the
-- application is neither: migrations run as the owner, the application as this role
-- (docs/operations.md, "The database role").
--
-- Run it as the owner of the tables (the role that runs `manage.py migrate`; a superuser
-- in docker-compose.yml), connected to the application's database:
--
--   psql -U arbiter -d arbiter -v app_role=arbiter_app -v app_password=SECRET \
--        -f platform/postgres/app-role.sql
--
--   app_role      the role to create, or to check and bring in line if it exists
--   app_password  its password, set each time the file runs
--   owner         optional: the role whose future tables the application may use
--                 (default: the role running this file)
--
-- Safe to run again, and to be run again after a restore (a database restored from a dump
-- lacks the REVOKE below). Everything happens in one transaction: an error changes nothing.

\set ON_ERROR_STOP on
\set QUIET on

\if :{?app_role}
\else
DO $$ BEGIN RAISE EXCEPTION 'app-role.sql needs -v app_role=NAME'; END $$;
\endif
\if :{?app_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'app-role.sql needs -v app_password=SECRET'; END $$;
\endif
\if :{?owner}
\else
SELECT current_user AS owner \gset
\endif
SELECT current_database() AS dbname \gset

BEGIN;

-- psql does not substitute its variables inside the dollar-quoted block below: it reads
-- them from these settings, which end with the transaction.
SET LOCAL app_role_sql.app_role = :'app_role';
SET LOCAL app_role_sql.owner = :'owner';

DO $$
DECLARE
    app_name text := current_setting('app_role_sql.app_role');
    owner_name text := current_setting('app_role_sql.owner');
    app pg_roles%ROWTYPE;
    reachable text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = owner_name) THEN
        RAISE EXCEPTION 'app-role.sql: the owner % is not a role', owner_name;
    END IF;
    -- Default privileges follow the role that creates a table: naming the wrong owner would
    -- leave the tables of the next migration out of reach of the application.
    IF EXISTS (SELECT FROM pg_tables WHERE schemaname = 'public')
            AND NOT EXISTS (
                SELECT FROM pg_tables WHERE schemaname = 'public' AND tableowner = owner_name
            ) THEN
        RAISE EXCEPTION 'app-role.sql: % owns no table here; run this file as the tables'' '
            'owner or name it with -v owner=ROLE', owner_name;
    END IF;
    IF app_name = owner_name OR app_name = current_user THEN
        RAISE EXCEPTION 'app-role.sql: the application role must not be the owner (%)',
            app_name;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = app_name) THEN
        -- CREATE ROLE's defaults: NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
        -- NOBYPASSRLS, and member of no role.
        EXECUTE format('CREATE ROLE %I LOGIN', app_name);
    END IF;
    SELECT * INTO app FROM pg_roles WHERE rolname = app_name;

    -- An existing role is checked, not silently changed: each of these would let it
    -- switch the triggers off, directly or by becoming a role that can.
    IF app.rolsuper OR app.rolcreaterole OR app.rolcreatedb OR app.rolreplication
            OR app.rolbypassrls THEN
        RAISE EXCEPTION 'app-role.sql: role % has SUPERUSER, CREATEROLE, CREATEDB, '
            'REPLICATION or BYPASSRLS; the application role must have none', app_name;
    END IF;
    IF EXISTS (
        SELECT FROM pg_shdepend
        WHERE refclassid = 'pg_authid'::regclass AND refobjid = app.oid AND deptype = 'o'
          AND dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
    ) THEN
        RAISE EXCEPTION 'app-role.sql: role % owns objects here; the application role must '
            'own nothing (REASSIGN OWNED BY it to the owner)', app_name;
    END IF;
    SELECT string_agg(r.rolname, ', ') INTO reachable
    FROM pg_roles r
    WHERE r.oid <> app.oid AND pg_has_role(app.oid, r.oid, 'MEMBER') AND (
        r.rolsuper OR r.rolcreaterole OR r.rolname = owner_name
        OR EXISTS (
            SELECT FROM pg_shdepend
            WHERE refclassid = 'pg_authid'::regclass AND refobjid = r.oid AND deptype = 'o'
        )
    );
    IF reachable IS NOT NULL THEN
        RAISE EXCEPTION 'app-role.sql: role % is a member of % and could act as it; the '
            'application role must not be', app_name, reachable;
    END IF;
END
$$;

ALTER ROLE :"app_role" LOGIN PASSWORD :'app_password';

-- The database: connect, nothing else. PUBLIC, which every role belongs to, may create
-- temporary tables by default, and a temporary table is found before a real one of the
-- same name. The triggers name their tables with the schema (decisions/0014), so a table
-- named decisions_decisionpurge cannot answer their question "does a purge record cover
-- this row?"; the application needs no temporary tables either, so it gets none.
REVOKE TEMPORARY ON DATABASE :"dbname" FROM PUBLIC;
REVOKE ALL ON DATABASE :"dbname" FROM :"app_role";
GRANT CONNECT ON DATABASE :"dbname" TO :"app_role";

-- The schema: use, not create (PostgreSQL 15 and later no longer let PUBLIC create there;
-- earlier versions do).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM :"app_role";
GRANT USAGE ON SCHEMA public TO :"app_role";

-- The tables and sequences there now: rows, not the tables themselves. No TRUNCATE (it
-- skips row triggers), TRIGGER or REFERENCES.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";

-- The same on those the owner's later migrations create.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    REVOKE ALL ON TABLES FROM :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    REVOKE ALL ON SEQUENCES FROM :"app_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO :"app_role";

COMMIT;

\echo app-role.sql: role :app_role may use database :dbname; future tables of :owner included.
