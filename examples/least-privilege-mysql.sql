-- A MySQL / MariaDB user for the related job that can read the entries and write only its
-- own tables. Run it as an administrator in the blog's database
--     mysql -u root -p blog < least-privilege-mysql.sql
-- after replacing related_job, the password and the database name "blog" with yours. The job
-- then connects with DATABASE_URL=mysql://related_job:PASSWORD@db.example.com:3306/blog

-- The user. '%' accepts it from any host: narrow it to where the job runs when you know it
-- ('related_job'@'10.0.0.%'). Choose a real password: it goes into the job's DATABASE_URL.
CREATE USER 'related_job'@'%' IDENTIFIED BY 'change-me';

-- Read the source. With a custom source_query or a preset, grant SELECT on every table the
-- query reads (Lokka: entries and categories. WordPress: wp_posts, wp_terms,
-- wp_term_taxonomy and wp_term_relationships, with your table prefix).
GRANT SELECT ON blog.entries TO 'related_job'@'%';

-- The results, the run log and the token cache, created here so the user needs no CREATE,
-- in the types and with the options related uses when it creates them itself: InnoDB (the
-- results are published in one transaction, which MyISAM cannot do) and utf8mb4.
-- The results: BIGINT ids for integer ids. For text ids (slugs) use VARCHAR(255) instead.
-- rank and key are reserved words in MySQL 8, hence the backticks.
CREATE TABLE IF NOT EXISTS related_entries (
    entry_id BIGINT NOT NULL,
    related_entry_id BIGINT NOT NULL,
    score DOUBLE NOT NULL,
    `rank` SMALLINT NOT NULL,
    PRIMARY KEY (entry_id, related_entry_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The run log: one row per run. Inserting into an AUTO_INCREMENT column needs only INSERT.
CREATE TABLE IF NOT EXISTS related_runs (
    run_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, results_table TEXT NOT NULL,
    started_at DATETIME(6) NOT NULL, finished_at DATETIME(6), status TEXT NOT NULL,
    entries INT, pairs INT, rows_inserted INT, rows_updated INT, rows_deleted INT,
    rows_total INT, settings_fingerprint TEXT, input_fingerprint TEXT, version TEXT,
    message TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The token cache (token_cache = true, the default): each entry's terms, so that a rerun
-- tokenises only new and edited entries. Without these two tables the job still runs, but
-- tokenises every entry every time (and warns).
CREATE TABLE IF NOT EXISTS related_token_cache (
    `key` VARBINARY(32) NOT NULL PRIMARY KEY,
    term_ids LONGBLOB NOT NULL,
    counts LONGBLOB NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS related_token_cache_terms (
    term_id INT NOT NULL PRIMARY KEY,
    term TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Write them: rows are added, changed and deleted, the tables themselves never altered.
-- (MySQL grants one table per statement.)
GRANT SELECT, INSERT, UPDATE, DELETE ON blog.related_entries TO 'related_job'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON blog.related_runs TO 'related_job'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON blog.related_token_cache TO 'related_job'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON blog.related_token_cache_terms TO 'related_job'@'%';

-- The job loads its results into a temporary table (related_staging, seen only by its own
-- connection and gone when it ends) before publishing them in one short transaction.
-- Temporary tables need their own privilege, which covers no permanent table.
GRANT CREATE TEMPORARY TABLES ON blog.* TO 'related_job'@'%';

-- Nothing else: the one-run-at-a-time lock (GET_LOCK) and the session's timeouts need no
-- privilege.
