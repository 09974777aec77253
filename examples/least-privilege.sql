-- A role for the related job that can read the entries and write only its own tables.
-- Run as the owner of the blog's tables (psql -d blog -f least-privilege.sql), after
-- replacing related_job, the password and the database name "blog" with yours.
CREATE ROLE related_job LOGIN PASSWORD 'change-me';
GRANT CONNECT ON DATABASE blog TO related_job;
GRANT USAGE ON SCHEMA public TO related_job;

-- Read the source. With a custom source_query or the lokka preset, grant SELECT on every
-- table the query reads (Lokka: entries and categories).
GRANT SELECT ON entries TO related_job;

-- The results and the run log, created here so the role needs no CREATE on the schema.
-- (For integer ids; use text, bigint or uuid to match your entries.id.)
CREATE TABLE IF NOT EXISTS related_entries (
    entry_id integer NOT NULL,
    related_entry_id integer NOT NULL,
    score double precision NOT NULL,
    rank smallint NOT NULL,
    PRIMARY KEY (entry_id, related_entry_id)
);
CREATE TABLE IF NOT EXISTS related_runs (
    run_id bigserial PRIMARY KEY, results_table text NOT NULL,
    started_at timestamptz NOT NULL, finished_at timestamptz, status text NOT NULL,
    entries integer, pairs integer, rows_inserted integer, rows_updated integer,
    rows_deleted integer, rows_total integer, settings_fingerprint text,
    input_fingerprint text, version text, message text
);
-- The token cache (token_cache = true, the default): each entry's terms, so that a rerun
-- tokenises only new and edited entries. Without these two tables the job still runs, but
-- tokenises every entry every time (and warns).
CREATE TABLE IF NOT EXISTS related_token_cache (
    key bytea PRIMARY KEY, term_ids bytea NOT NULL, counts bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS related_token_cache_terms (
    term_id integer PRIMARY KEY, term text NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE
    ON related_entries, related_runs, related_token_cache, related_token_cache_terms
    TO related_job;
GRANT USAGE ON SEQUENCE related_runs_run_id_seq TO related_job;
-- The job stages rows in a temporary table: TEMPORARY is granted to PUBLIC by default; if
-- your database revoked it, also: GRANT TEMPORARY ON DATABASE blog TO related_job;
