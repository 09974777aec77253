"""The presets against the schemas of the blogs they name, on every backend: Lokka (its
entries and categories tables, its similarities table read by the themes) and WordPress
(wp_posts and the term tables, with a table prefix). Each schema is created in the column
types that blog engine really uses on that backend, filled with the sample corpus, and the
job is run through the CLI."""

from __future__ import annotations

import json

from conftest import Backend

from related.config import SourceSettings
from related.db import connect
from related.sample import sample_entries

DRAFTS = {e["id"] for e in sample_entries() if not e["published"]}  # 11, 20, 31


def insert(backend: Backend, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT ``rows`` into the named ``columns`` (the rest keep their defaults)."""
    backend.insert(f"{table} ({', '.join(columns)})", rows)


def ids_in(backend: Backend, table: str, related_column: str) -> tuple[set, set]:
    """The entry ids and the related ids stored in a results table."""
    rows = backend.sql(f"SELECT entry_id, {related_column} FROM {table}")
    return {int(r[0]) for r in rows}, {int(r[1]) for r in rows}


# -- Lokka -----------------------------------------------------------------------------------

LOKKA_FLAGS = ("--preset", "lokka", "--results-layout", "lokka", "--results-table", "similarities")
LOKKA_PAGE = 40  # type 'Page': Lokka's static pages, not posts
LOKKA_POSTS = {e["id"] for e in sample_entries()} - DRAFTS - {LOKKA_PAGE}
THEME_QUERY = (
    "SELECT similar_entry_id FROM similarities WHERE entry_id = 1 ORDER BY score DESC LIMIT 3"
)

# Lokka's tables as DataMapper creates them on each backend (Serial ids, String = VARCHAR(50)
# for `type` and `markup`, Text, Boolean: TINYINT(1) on MySQL, 't'/'f' in SQLite).
LOKKA_SCHEMA = {
    "mysql": """
CREATE TABLE categories (id INT(10) UNSIGNED NOT NULL AUTO_INCREMENT, slug VARCHAR(255),
  title VARCHAR(255), description TEXT, created_at DATETIME, updated_at DATETIME,
  PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE entries (id INT(10) UNSIGNED NOT NULL AUTO_INCREMENT, user_id INT(10) UNSIGNED,
  category_id INT(10) UNSIGNED, slug VARCHAR(255), title VARCHAR(255), body TEXT,
  markup VARCHAR(50), type VARCHAR(50), draft TINYINT(1) DEFAULT 0, frozen_tag_list TEXT,
  created_at DATETIME, updated_at DATETIME, PRIMARY KEY (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE similarities (id INT(10) UNSIGNED NOT NULL AUTO_INCREMENT, entry_id INT(10) UNSIGNED,
  similar_entry_id INT(10) UNSIGNED, score INT(11), PRIMARY KEY (id))
  ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
""",
    "postgresql": """
CREATE TABLE categories (id serial PRIMARY KEY, slug varchar(255), title varchar(255),
  description text, created_at timestamp, updated_at timestamp);
CREATE TABLE entries (id serial PRIMARY KEY, user_id integer, category_id integer,
  slug varchar(255), title varchar(255), body text, markup varchar(50), type varchar(50),
  draft boolean DEFAULT false, frozen_tag_list text, created_at timestamp, updated_at timestamp);
CREATE TABLE similarities (id serial PRIMARY KEY, entry_id integer, similar_entry_id integer,
  score integer)
""",
    "sqlite": """
CREATE TABLE categories (id INTEGER PRIMARY KEY AUTOINCREMENT, slug VARCHAR(255),
  title VARCHAR(255), description TEXT, created_at TIMESTAMP, updated_at TIMESTAMP);
CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER, category_id INTEGER,
  slug VARCHAR(255), title VARCHAR(255), body TEXT, markup VARCHAR(50), type VARCHAR(50),
  draft BOOLEAN DEFAULT 'f', frozen_tag_list TEXT, created_at TIMESTAMP, updated_at TIMESTAMP);
CREATE TABLE similarities (id INTEGER PRIMARY KEY AUTOINCREMENT, entry_id INTEGER,
  similar_entry_id INTEGER, score INTEGER)
""",
}
# The statement the refusal names, per backend (SQLite keeps 0.5 in an INTEGER column).
LOKKA_SCORE_FIX = {
    "postgresql": "ALTER TABLE similarities ALTER COLUMN score TYPE double precision",
    "mysql": "ALTER TABLE similarities MODIFY score DOUBLE NOT NULL",
    "sqlite": None,
}


def load_lokka(backend: Backend) -> None:
    """Lokka's schema (with an old similarities table: integer scores) and the sample corpus:
    drafts where not published, entry 40 a page, the sample's topics as categories, tags in
    frozen_tag_list as dm-tags writes them ("a, b")."""
    backend.script(LOKKA_SCHEMA[backend.name])
    entries = sample_entries()
    topics = sorted({e["category"] for e in entries})
    insert(
        backend,
        "categories",
        ("id", "slug", "title"),
        [(i, topic, topic.upper()) for i, topic in enumerate(topics, start=1)],
    )

    def draft(flag: bool):
        return {"postgresql": flag, "mysql": int(flag), "sqlite": "t" if flag else "f"}[
            backend.name
        ]

    insert(
        backend,
        "entries",
        (
            "id",
            "user_id",
            "category_id",
            "slug",
            "title",
            "body",
            "markup",
            "type",
            "draft",
            "frozen_tag_list",
            "created_at",
            "updated_at",
        ),
        [
            (
                e["id"],
                1,
                topics.index(e["category"]) + 1,
                f"entry-{e['id']}",
                e["title"],
                e["body"],
                "html",
                "Page" if e["id"] == LOKKA_PAGE else "Post",
                draft(not e["published"]),
                ", ".join(e["tags"].split(",")) if e["tags"] else None,
                "2026-01-01 00:00:00",
                e["updated_at"].replace("T", " "),
            )
            for e in entries
        ],
    )


def test_lokka_preset_and_its_similarities_table(backend, invoke):
    load_lokka(backend)
    args = ("run", "--database-url", backend.url, *LOKKA_FLAGS)
    fix = LOKKA_SCORE_FIX[backend.name]
    if fix is not None:
        refused = invoke(*args)
        assert refused.exit_code == 2, refused.output
        assert "stores score as int" in refused.stderr
        assert "which would round every score; it was not written" in refused.stderr
        assert refused.stderr.rstrip().endswith(f"Run: {fix}")
        assert backend.sql("SELECT count(*) FROM similarities") == [(0,)]
        backend.sql(fix)

    # What the preset reads: posts that are not drafts, their tags and category title.
    with connect(backend.url) as db:
        entries = db.read_entries(SourceSettings(preset="lokka"))
    by_id = {e["id"]: e for e in sample_entries()}
    assert set(entries.ids) == LOKKA_POSTS
    for entry in entries.items:
        sample = by_id[entry.id]
        assert entry.tags == (tuple(sample["tags"].split(",")) if sample["tags"] else ())
        assert (entry.title, entry.category) == (sample["title"], sample["category"].upper())

    result = invoke(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"] == len(LOKKA_POSTS) == 36
    rows = backend.sql("SELECT id, entry_id, similar_entry_id, score FROM similarities")
    assert len(rows) == 360 and len({r[0] for r in rows}) == 360  # the id column filled itself
    assert all(0 < r[3] <= 1 for r in rows)
    assert any(r[3] != int(r[3]) for r in rows)  # not rounded, also in SQLite's INTEGER column
    if backend.name == "sqlite":
        assert backend.sql("SELECT DISTINCT typeof(score) FROM similarities") == [("real",)]
        assert ("score", "INTEGER") in [
            (r[1], r[2]) for r in backend.sql("PRAGMA table_info(similarities)")
        ]
    entry_ids, similar_ids = ids_in(backend, "similarities", "similar_entry_id")
    assert entry_ids == LOKKA_POSTS and similar_ids <= LOKKA_POSTS  # no drafts, no page

    # What a Lokka theme runs shows what `related show` shows.
    theme = [int(r[0]) for r in backend.sql(THEME_QUERY)]
    shown = invoke("show", "1", "--database-url", backend.url, *LOKKA_FLAGS, "--format", "json")
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    assert payload["title"] == by_id[1]["title"]
    assert [n["related_entry_id"] for n in payload["related"][:3]] == theme
    assert len(theme) == 3


def test_lokka_results_table_on_myisam_is_refused_and_left_alone(mysql_url, invoke):
    backend = Backend("mysql", mysql_url)
    load_lokka(backend)
    backend.script(
        "DROP TABLE similarities;\n"
        "CREATE TABLE similarities (id INT(10) UNSIGNED NOT NULL AUTO_INCREMENT, "
        "entry_id INT(10) UNSIGNED, similar_entry_id INT(10) UNSIGNED, score DOUBLE, "
        "PRIMARY KEY (id)) ENGINE=MyISAM"
    )
    backend.sql("INSERT INTO similarities (entry_id, similar_entry_id, score) VALUES (1, 2, 0.5)")
    result = invoke("run", "--database-url", mysql_url, *LOKKA_FLAGS)
    assert result.exit_code == 2, result.output
    assert "is stored in an engine without transactions" in result.stderr
    assert result.stderr.rstrip().endswith("Run: ALTER TABLE similarities ENGINE=InnoDB")
    assert backend.sql("SELECT id, entry_id, similar_entry_id, score FROM similarities") == [
        (1, 1, 2, 0.5)
    ]
    engine = backend.sql(
        "SELECT engine FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = 'similarities'"
    )
    assert engine == [("MyISAM",)]
    # The statement it names is the whole fix.
    backend.sql("ALTER TABLE similarities ENGINE=InnoDB")
    fixed = invoke("run", "--database-url", mysql_url, *LOKKA_FLAGS)
    assert fixed.exit_code == 0, fixed.output
    assert backend.sql("SELECT count(*) FROM similarities") == [(360,)]


# -- WordPress -------------------------------------------------------------------------------

WP_PAGE, WP_REVISION = 40, 39
WP_POSTS = {e["id"] for e in sample_entries()} - DRAFTS - {WP_PAGE, WP_REVISION}  # 35 posts
# Terms found in no title or body, so a shared term of that name came from the tags or the
# category: entries 1 (CI) and 4 (coffee) get the extra tag, entries 1 and 9 share a category.
EXTRA_TAG, EXTRA_TAG_POSTS = "Quokkadex", (1, 4)
CATEGORY_NAMES = {
    "aws": "AWS",
    "camera": "カメラ",
    "cicd": "Pipelinecraft",
    "coffee": "コーヒー",
    "cooking": "料理",
    "docker": "Docker",
    "hiking": "登山",
    "music": "音楽",
}


def wordpress_schema(backend: Backend, prefix: str) -> str:
    """The four tables the preset reads, with the columns WordPress has (minus a few that
    play no part here), in WordPress's own types on MySQL (wp-admin/includes/schema.php);
    PostgreSQL and SQLite as ports of it (SQLite Database Integration) declare them."""
    if backend.name == "mysql":
        # WordPress declares its DATETIMEs DEFAULT '0000-00-00 00:00:00' and clears
        # NO_ZERO_DATE for its session; MySQL 8's default sql_mode refuses that default.
        return f"""
CREATE TABLE {prefix}posts (
  ID bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  post_author bigint(20) unsigned NOT NULL DEFAULT 0,
  post_date datetime NOT NULL,
  post_date_gmt datetime NOT NULL,
  post_content longtext NOT NULL,
  post_title text NOT NULL,
  post_excerpt text NOT NULL,
  post_status varchar(20) NOT NULL DEFAULT 'publish',
  post_name varchar(200) NOT NULL DEFAULT '',
  post_modified datetime NOT NULL,
  post_modified_gmt datetime NOT NULL,
  post_parent bigint(20) unsigned NOT NULL DEFAULT 0,
  post_type varchar(20) NOT NULL DEFAULT 'post',
  PRIMARY KEY (ID),
  KEY post_name (post_name(191)),
  KEY type_status_date (post_type, post_status, post_date, ID),
  KEY post_parent (post_parent),
  KEY post_author (post_author)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE {prefix}terms (
  term_id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  name varchar(200) NOT NULL DEFAULT '',
  slug varchar(200) NOT NULL DEFAULT '',
  term_group bigint(10) NOT NULL DEFAULT 0,
  PRIMARY KEY (term_id),
  KEY slug (slug(191)),
  KEY name (name(191))
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE {prefix}term_taxonomy (
  term_taxonomy_id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  term_id bigint(20) unsigned NOT NULL DEFAULT 0,
  taxonomy varchar(32) NOT NULL DEFAULT '',
  description longtext NOT NULL,
  parent bigint(20) unsigned NOT NULL DEFAULT 0,
  count bigint(20) NOT NULL DEFAULT 0,
  PRIMARY KEY (term_taxonomy_id),
  UNIQUE KEY term_id_taxonomy (term_id, taxonomy),
  KEY taxonomy (taxonomy)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
CREATE TABLE {prefix}term_relationships (
  object_id bigint(20) unsigned NOT NULL DEFAULT 0,
  term_taxonomy_id bigint(20) unsigned NOT NULL DEFAULT 0,
  term_order int(11) NOT NULL DEFAULT 0,
  PRIMARY KEY (object_id, term_taxonomy_id),
  KEY term_taxonomy_id (term_taxonomy_id)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci
"""
    t = (
        {"id": "bigserial", "big": "bigint", "long": "text", "time": "timestamp"}
        if backend.name == "postgresql"
        else {"id": "integer", "big": "integer", "long": "text", "time": "text"}
    )
    return f"""
CREATE TABLE {prefix}posts (
  ID {t["id"]} PRIMARY KEY,
  post_author {t["big"]} NOT NULL DEFAULT 0,
  post_date {t["time"]} NOT NULL,
  post_date_gmt {t["time"]} NOT NULL,
  post_content {t["long"]} NOT NULL,
  post_title text NOT NULL,
  post_excerpt text NOT NULL,
  post_status varchar(20) NOT NULL DEFAULT 'publish',
  post_name varchar(200) NOT NULL DEFAULT '',
  post_modified {t["time"]} NOT NULL,
  post_modified_gmt {t["time"]} NOT NULL,
  post_parent {t["big"]} NOT NULL DEFAULT 0,
  post_type varchar(20) NOT NULL DEFAULT 'post'
);
CREATE TABLE {prefix}terms (
  term_id {t["id"]} PRIMARY KEY,
  name varchar(200) NOT NULL DEFAULT '',
  slug varchar(200) NOT NULL DEFAULT '',
  term_group {t["big"]} NOT NULL DEFAULT 0
);
CREATE TABLE {prefix}term_taxonomy (
  term_taxonomy_id {t["id"]} PRIMARY KEY,
  term_id {t["big"]} NOT NULL DEFAULT 0,
  taxonomy varchar(32) NOT NULL DEFAULT '',
  description {t["long"]} NOT NULL,
  parent {t["big"]} NOT NULL DEFAULT 0,
  count {t["big"]} NOT NULL DEFAULT 0,
  UNIQUE (term_id, taxonomy)
);
CREATE TABLE {prefix}term_relationships (
  object_id {t["big"]} NOT NULL DEFAULT 0,
  term_taxonomy_id {t["big"]} NOT NULL DEFAULT 0,
  term_order integer NOT NULL DEFAULT 0,
  PRIMARY KEY (object_id, term_taxonomy_id)
)
"""


def wordpress_tags(entry: dict) -> set[str]:
    tags = set(entry["tags"].split(",")) if entry["tags"] else set()
    return tags | ({EXTRA_TAG} if entry["id"] in EXTRA_TAG_POSTS else set())


def load_wordpress(backend: Backend, prefix: str = "wp_") -> None:
    """WordPress's tables and the sample corpus as posts: drafts as post_status 'draft',
    entry 40 a page, entry 39 a revision (of 38), tags as post_tag terms and the topic as a
    category term. As WordPress does since 4.2, a tag and a category of the same name are two
    terms; term_taxonomy_id differs from term_id, and one post also has a post_format term."""
    backend.script(wordpress_schema(backend, prefix))
    entries = sample_entries()
    taxonomy_terms = [("category", name) for name in sorted(set(CATEGORY_NAMES.values()))]
    taxonomy_terms += [
        ("post_tag", name) for name in sorted(set().union(*map(wordpress_tags, entries)))
    ]
    taxonomy_terms.append(("post_format", "post-format-aside"))
    term_id = {pair: i for i, pair in enumerate(taxonomy_terms, start=1)}
    insert(
        backend,
        f"{prefix}terms",
        ("term_id", "name", "slug"),
        [(i, name, f"{name.lower()}-{i}") for (_, name), i in term_id.items()],
    )
    insert(
        backend,
        f"{prefix}term_taxonomy",
        ("term_taxonomy_id", "term_id", "taxonomy", "description"),
        [(i + 100, i, taxonomy, "") for (taxonomy, _), i in term_id.items()],
    )
    relationships = []
    posts = []
    for e in entries:
        relationships.append((e["id"], term_id["category", CATEGORY_NAMES[e["category"]]] + 100))
        relationships += [(e["id"], term_id["post_tag", tag] + 100) for tag in wordpress_tags(e)]
        status, post_type, parent = "publish", "post", 0
        if not e["published"]:
            status = "draft"
        if e["id"] == WP_PAGE:
            post_type = "page"
        if e["id"] == WP_REVISION:
            status, post_type, parent = "inherit", "revision", WP_REVISION - 1
        when = e["updated_at"].replace("T", " ")
        posts.append(
            (e["id"], 1, when, when, e["body"], e["title"], "", status, f"p{e['id']}", when)
            + (when, parent, post_type)
        )
    relationships.append((2, term_id["post_format", "post-format-aside"] + 100))
    insert(backend, f"{prefix}term_relationships", ("object_id", "term_taxonomy_id"), relationships)
    insert(
        backend,
        f"{prefix}posts",
        (
            "ID",
            "post_author",
            "post_date",
            "post_date_gmt",
            "post_content",
            "post_title",
            "post_excerpt",
            "post_status",
            "post_name",
            "post_modified",
            "post_modified_gmt",
            "post_parent",
            "post_type",
        ),
        posts,
    )


def test_wordpress_preset_reads_published_posts_with_their_terms(backend, invoke):
    load_wordpress(backend)
    texts = " ".join(e["title"] + e["body"] for e in sample_entries()).lower()
    assert EXTRA_TAG.lower() not in texts and CATEGORY_NAMES["cicd"].lower() not in texts

    # What the preset's query returns: published posts only, each with its tags and category.
    with connect(backend.url) as db:
        entries = db.read_entries(SourceSettings(preset="wordpress"))
    by_id = {e["id"]: e for e in sample_entries()}
    assert set(entries.ids) == WP_POSTS
    for entry in entries.items:
        assert set(entry.tags) == wordpress_tags(by_id[entry.id]), entry.id
        assert entry.category == CATEGORY_NAMES[by_id[entry.id]["category"]], entry.id
        assert entry.title == by_id[entry.id]["title"]
        assert entry.body == by_id[entry.id]["body"]

    flags = ("--database-url", backend.url, "--preset", "wordpress")
    result = invoke("run", *flags, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"] == len(WP_POSTS) == 35
    assert len(backend.rows()) == 350
    entry_ids, related_ids = ids_in(backend, "related_entries", "related_entry_id")
    assert entry_ids == WP_POSTS and related_ids <= WP_POSTS  # no draft, page or revision

    # The terms reach the job: the extra tag and the category are shared terms.
    def shared_terms(a: int, b: int) -> set[str]:
        explained = invoke("explain", str(a), str(b), *flags, "--format", "json")
        assert explained.exit_code == 0, explained.output
        return {term["term"] for term in json.loads(explained.stdout)["shared"]}

    assert EXTRA_TAG.lower() in shared_terms(*EXTRA_TAG_POSTS)
    assert CATEGORY_NAMES["cicd"].lower() in shared_terms(1, 9)
    # ... and their weight counts: without tags the lists are different ones.
    no_tags = invoke("run", *flags, "--tags-weight", "0", "--results-table", "related_no_tags")
    assert no_tags.exit_code == 0, no_tags.output
    assert len(backend.rows("related_no_tags")) == 350
    assert backend.rows("related_no_tags") != backend.rows()

    # `related show` finds the titles through the preset too.
    shown = invoke("show", "1", *flags, "--format", "json")
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    assert payload["title"] == by_id[1]["title"]
    assert [n["title"] for n in payload["related"]] == [
        by_id[n["related_entry_id"]]["title"] for n in payload["related"]
    ]


def test_wordpress_table_prefix(backend, invoke):
    load_wordpress(backend, prefix="blog_")
    flags = ("--database-url", backend.url, "--preset", "wordpress")
    result = invoke("run", *flags, "--table-prefix", "blog_", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"] == 35
    entry_ids, _ = ids_in(backend, "related_entries", "related_entry_id")
    assert entry_ids == WP_POSTS
    # The default prefix reads wp_posts, which this blog does not have.
    missing = invoke("run", *flags, "--force")
    assert missing.exit_code == 2, missing.output
    assert "wp_posts" in missing.stderr and "Traceback" not in missing.output


HOSTILE_PREFIXES = ("wp_; DROP TABLE x; --", "wp_posts p; DROP TABLE x; --", "wp.", "1wp_", "wp-")


def test_wordpress_hostile_table_prefix_is_refused_before_any_sql(backend, invoke):
    backend.sql("CREATE TABLE x (y integer)")
    before = backend.tables()
    for prefix in HOSTILE_PREFIXES:
        result = invoke(
            "run", "--database-url", backend.url, "--preset", "wordpress", "--table-prefix", prefix
        )
        assert result.exit_code == 2, (prefix, result.output)
        assert result.stderr.startswith(
            f"Error: table_prefix = {prefix!r} is not a valid table name prefix"
        )
        assert "Traceback" not in result.output
    assert backend.tables() == before  # x is still there, and not even the run log was created


def test_wordpress_tags_are_never_cut_by_group_concat_max_len(mysql_url):
    """MySQL 8 cuts GROUP_CONCAT at 1,024 bytes by default (MariaDB at 1 MB): the session the
    job opens lifts it. The URL's init_command imposes MySQL 8's default first."""
    from related.config import SourceSettings
    from related.db import connect

    backend = Backend("mysql", mysql_url)
    load_wordpress(backend)
    many = [f"タグ{i:03d}番目の名前" for i in range(60)]  # ~1.8 KB of tag names
    first = 1000
    insert(
        backend,
        "wp_terms",
        ("term_id", "name", "slug"),
        [(first + i, name, f"t{i}") for i, name in enumerate(many)],
    )
    insert(
        backend,
        "wp_term_taxonomy",
        ("term_taxonomy_id", "term_id", "taxonomy", "description"),
        [(first + i, first + i, "post_tag", "") for i in range(len(many))],
    )
    insert(
        backend,
        "wp_term_relationships",
        ("object_id", "term_taxonomy_id"),
        [(1, first + i) for i in range(len(many))],
    )
    url = mysql_url + "?init_command=SET%20SESSION%20group_concat_max_len%20%3D%201024"
    with connect(url) as db:
        entries = db.read_entries(SourceSettings(preset="wordpress"))
    post = next(e for e in entries.items if e.id == 1)
    assert set(many) <= set(post.tags)
