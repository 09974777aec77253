#!/usr/bin/env python3
"""Benchmark Python MySQL/MariaDB drivers: PyMySQL vs mysql-connector-python
(C extension and pure-Python mode).

How the MySQL driver was chosen (bench/README.md, "MySQL drivers"). It needs the other
candidate, which the project does not depend on:
    .venv/bin/pip install mysql-connector-python
    .venv/bin/python bench/mysql_drivers.py          # ~21 min; MariaDB on 127.0.0.1:3306, root

Options:
    --reps N        repetitions (default 3); medians are reported
    --keep-db       do not drop database `driverbench` at the end (the 1.8 GB
                    `entries` table is then reused by the next run)
    --scale F       scale factor for row counts (default 1.0; e.g. 0.1 for a smoke test)
    --only a,b      only these operations (read,write,blob)

Every single measurement runs in a fresh child process (`bench.py --trial ...`)
so that peak RSS (ru_maxrss) is clean per measurement and one driver's heap /
imported modules cannot influence another. Within each repetition the order of
drivers is rotated, so drivers are interleaved on this noisy shared machine.

NOTE on the mysql-connector C extension: the manylinux wheel vendors its own
OpenSSL (>= 3.2) as mysql/vendor/libssl.so.3. If Python's `ssl` module (linked
against the system OpenSSL 3.0 on Debian 12) is imported first -- and
mysql.connector itself imports ssl before trying the C extension -- the dynamic
loader reuses the already-loaded system libssl.so.3, `_mysql_connector` fails to
load (OPENSSL_3.2.0 not found) and mysql.connector *silently* falls back to pure
Python (HAVE_CEXT=False) unless use_pure=False is passed explicitly (then it
raises). The workaround used here for the "mc_cext" driver is to
`import _mysql_connector` before anything imports ssl.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import time

# Scratch files and results.json go where the other benchmarks keep theirs (git-ignored).
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "mysql_drivers")
os.makedirs(HERE, exist_ok=True)
DB = "driverbench"
HOST, PORT, USER, PASSWORD = "127.0.0.1", 3306, "root", ""

N_ENTRIES = 100_000
BODY_CHARS = 6_000
N_RESULTS = 1_000_000  # 100,000 entries x 10 related
N_BLOBS = 200_000
MULTIROW_CHUNK = 2_000  # rows per hand-built INSERT (1M-row test)
BLOB_MULTIROW_CHUNK = 1_000  # rows per hand-built INSERT (BLOB test, ~1.3 MB/stmt)
MC_EXECUTEMANY_CHUNK = 10_000  # mysql-connector builds ONE statement per executemany() call
MC_BLOB_EXECUTEMANY_CHUNK = 5_000

DRIVERS = ["pymysql", "mc_cext", "mc_pure"]

# --------------------------------------------------------------------------
# deterministic Japanese text
# --------------------------------------------------------------------------
JA_SENTENCES = [
    "今日は朝から雨が降っていて、駅までの道がとても混雑していました。",
    "新しい研究によると、睡眠の質は日中の集中力に大きな影響を与えるそうです。",
    "東京の桜は例年より一週間ほど早く満開を迎えました。",
    "このアルゴリズムは計算量を大幅に削減し、大規模なデータにも対応できます。",
    "彼女は図書館で古い地図を見つけ、その町の歴史について調べ始めた。",
    "会議の結果、来月から新しい評価制度を導入することが決まりました。",
    "山の上から眺める夕焼けは、言葉では表せないほど美しかった。",
    "データベースの索引を適切に設計することで、検索速度が飛躍的に向上する。",
    "祖母の作る味噌汁は、どんな料理店の味よりも心が温まる。",
    "電車が遅れたため、待ち合わせの時間に十五分ほど遅れてしまった。",
    "人工知能の発展に伴い、著作権や責任の所在が改めて議論されている。",
    "小さな町の商店街には、昔ながらの八百屋や魚屋が今も残っている。",
    "論文の締め切りが近づき、研究室は夜遅くまで明かりが消えなかった。",
    "秋になると、京都の寺院は紅葉を見に来る観光客でにぎわう。",
    "この文章は検索エンジンの性能を評価するための日本語のサンプルです。",
    "彼は毎朝六時に起きて、近所の公園を三十分ほど走ることにしている。",
    "地震に備えて、水や非常食を一週間分ほど用意しておくことが推奨される。",
    "新幹線の窓から見える富士山は、雲ひとつない青空に映えていた。",
    "形態素解析を行うと、文章を単語ごとに分割して品詞を判定できる。",
    "夏祭りの夜、浴衣を着た子どもたちが金魚すくいに夢中になっていた。",
    "経済の先行きが不透明な中、多くの企業が投資計画を見直している。",
    "猫は窓辺の日だまりで、気持ちよさそうに昼寝をしていた。",
    "プログラムの不具合を修正するために、ログを一行ずつ丁寧に確認した。",
    "冬の北海道では、雪まつりに合わせて国内外から多くの人が訪れる。",
    "先生は生徒一人ひとりの意見に耳を傾け、丁寧に答えてくれた。",
    "類似度の計算には、コサイン類似度や編集距離などがよく使われる。",
    "古い民家を改装したカフェは、落ち着いた雰囲気で人気を集めている。",
    "台風の接近に伴い、明日の午前中は交通機関に乱れが生じる見込みです。",
    "彼の書いた小説は、繊細な心理描写が高く評価され、文学賞を受賞した。",
    "全文検索では、転置索引を用いることで大量の文書から素早く結果を返せる。",
    "週末には家族で近くの温泉に出かけ、ゆっくりと疲れを癒やした。",
    "この地域では、昔から米作りと酒造りが盛んに行われてきた。",
    "「ありがとう」という一言が、人間関係を円滑にすることもある。",
    "実験の結果は仮説を支持するものだったが、追加の検証が必要だ。",
    "海辺の町では、朝早くから漁師たちが市場に魚を運んでいた。",
    "ウェブサイトの応答速度を改善するため、キャッシュの設定を見直した。",
    "春の訪れとともに、畑には菜の花が一面に咲き誇っていた。",
    "日本語の文章には、漢字、ひらがな、カタカナが混在している。",
    "博物館では、江戸時代の生活を再現した展示が行われている。",
    "彼女は留学先で学んだ経験を活かし、国際的な仕事に就いた。",
]


def make_entry(i, rng):
    """Deterministic (title, body) for entry i, using the shared seeded rng."""
    target = rng.randint(BODY_CHARS - 500, BODY_CHARS + 500)
    parts, n = [], 0
    while n < target:
        s = JA_SENTENCES[rng.randrange(len(JA_SENTENCES))]
        parts.append(s)
        n += len(s)
    body = "".join(parts)[:target]
    title = f"第{i}号 " + JA_SENTENCES[rng.randrange(len(JA_SENTENCES))][:25]
    return title, body


def make_result_rows(n_entries):
    """1M rows (entry_id, related_id, score, rank) as plain Python types."""
    import numpy as np

    rng = np.random.default_rng(12345)
    entry = np.repeat(np.arange(1, n_entries + 1, dtype=np.int64), 10)
    base = np.repeat(rng.integers(0, 100_000, n_entries), 10)
    k = np.tile(np.arange(1, 11, dtype=np.int64), n_entries)
    related = (base + k * 9973) % 100_000 + 1  # distinct within an entry
    score = rng.random(n_entries * 10)
    rank = k
    return list(zip(entry.tolist(), related.tolist(), score.tolist(), rank.tolist()))


def make_blob_rows(n):
    import hashlib

    import numpy as np

    rng = np.random.default_rng(67890)
    rows = []
    for s in range(0, n, 10_000):  # chunked so the generator's peak RSS stays small
        m = min(10_000, n - s)
        terms = rng.integers(0, 2**32, size=(m, 150), dtype=np.uint32)  # 600 bytes
        counts = rng.integers(0, 2**16, size=(m, 300), dtype=np.uint16)  # 600 bytes
        for j in range(m):
            rows.append(
                (hashlib.md5(b"k%d" % (s + j)).digest(), terms[j].tobytes(), counts[j].tobytes())
            )
    return rows


# --------------------------------------------------------------------------
# driver glue
# --------------------------------------------------------------------------
def connect(driver, db=DB, **extra):
    if driver == "pymysql":
        import pymysql

        return pymysql.connect(
            host=HOST,
            port=PORT,
            user=USER,
            password=PASSWORD,
            database=db,
            charset="utf8mb4",
            **extra,
        )
    import mysql.connector

    use_pure = driver == "mc_pure"
    if not use_pure and not mysql.connector.HAVE_CEXT:
        raise RuntimeError("mysql-connector C extension not loadable")
    return mysql.connector.connect(
        host=HOST,
        port=PORT,
        user=USER,
        password=PASSWORD,
        database=db,
        charset="utf8mb4",
        use_pure=use_pure,
        **extra,
    )


def import_driver(driver):
    if driver == "mc_cext":
        import _mysql_connector  # noqa: F401  (must precede `import ssl`, see module doc)
    if driver == "pymysql":
        import pymysql  # noqa: F401
    else:
        import mysql.connector  # noqa: F401


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(who=None):
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF if who is None else who)
    return r.ru_utime + r.ru_stime


def maxrss_kb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --------------------------------------------------------------------------
# trials (run in child processes)
# --------------------------------------------------------------------------
def trial_read(driver, method, scale):
    limit = int(N_ENTRIES * scale)
    sql = f"SELECT id, title, body FROM entries WHERE id <= {limit} ORDER BY id"
    if driver == "mysql_cli":  # reference floor: C client (libmariadb) streaming to /dev/null
        import resource

        c0 = cpu_s(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        with open(os.devnull, "wb") as devnull:
            subprocess.run(
                [
                    "mysql",
                    "-h",
                    HOST,
                    "-P",
                    str(PORT),
                    "-u",
                    USER,
                    "--quick",
                    "-N",
                    "-B",
                    "--default-character-set=utf8mb4",
                    DB,
                    "-e",
                    sql,
                ],
                stdout=devnull,
                check=True,
            )
        secs = time.perf_counter() - t0
        return {
            "secs": secs,
            "cpu_secs": cpu_s(resource.RUSAGE_CHILDREN) - c0,
            "rows": limit,
            "chars": None,
        }
    conn = connect(driver)
    if driver == "pymysql":
        import pymysql.cursors

        cur = conn.cursor(
            pymysql.cursors.Cursor if method == "buffered" else pymysql.cursors.SSCursor
        )
    else:
        cur = conn.cursor(buffered=(method == "buffered"))
    rss0 = rss_kb()
    c0 = cpu_s()
    t0 = time.perf_counter()
    cur.execute(sql)
    n = chars = 0
    if method == "buffered":
        rows = cur.fetchall()
        for r in rows:
            chars += len(r[2])
        n = len(rows)
    else:  # streaming: never hold more than one batch
        while True:
            batch = cur.fetchmany(1000)
            if not batch:
                break
            n += len(batch)
            for r in batch:
                chars += len(r[2])
    secs = time.perf_counter() - t0
    cpu = cpu_s() - c0
    peak = maxrss_kb()
    cur.close()
    conn.close()
    return {
        "secs": secs,
        "cpu_secs": cpu,
        "rss0_kb": rss0,
        "peak_kb": peak,
        "rows": n,
        "chars": chars,
    }


def create_results_table(cur):
    cur.execute("DROP TEMPORARY TABLE IF EXISTS t")
    cur.execute(
        "CREATE TEMPORARY TABLE t (entry_id BIGINT NOT NULL, related_id BIGINT NOT NULL,"
        " score DOUBLE NOT NULL, `rank` SMALLINT NOT NULL,"
        " PRIMARY KEY (entry_id, related_id)) ENGINE=InnoDB"
    )


def create_blob_table(cur):
    cur.execute("DROP TEMPORARY TABLE IF EXISTS tb")
    cur.execute(
        "CREATE TEMPORARY TABLE tb (`key` VARBINARY(16) NOT NULL PRIMARY KEY,"
        " term_ids LONGBLOB NOT NULL, counts LONGBLOB NOT NULL) ENGINE=InnoDB"
    )


def _tsv_escape(b):
    return (
        b.replace(b"\\", b"\\\\")
        .replace(b"\t", b"\\t")
        .replace(b"\n", b"\\n")
        .replace(b"\0", b"\\0")
    )


def write_infile(rows, path, blob):
    t0 = time.perf_counter()
    with open(path, "wb", buffering=1 << 20) as f:
        if blob:
            for k, a, b in rows:
                f.write(b"%s\t%s\t%s\n" % (_tsv_escape(k), _tsv_escape(a), _tsv_escape(b)))
        else:
            f.write("".join("%d\t%d\t%r\t%d\n" % r for r in rows).encode())
    return time.perf_counter() - t0


def trial_write(driver, method, scale, blob):
    extra = {"autocommit": True}
    if method == "loaddata":
        extra["local_infile" if driver == "pymysql" else "allow_local_infile"] = True
    if blob:
        rows = make_blob_rows(int(N_BLOBS * scale))
        table, ncol = "tb", 3
    else:
        rows = make_result_rows(int(N_RESULTS // 10 * scale))
        table, ncol = "t", 4
    conn = connect(driver, **extra)
    cur = conn.cursor()
    (create_blob_table if blob else create_results_table)(cur)
    ph = "(" + ",".join(["%s"] * ncol) + ")"
    ins = f"INSERT INTO {table} VALUES {ph}"
    rss0 = rss_kb()
    prep = None
    c0 = cpu_s()
    t0 = time.perf_counter()
    if method == "executemany":
        if driver == "pymysql":
            cur.executemany(ins, rows)  # PyMySQL splits into <= max_stmt_length (1 MB) statements
        else:
            ch = MC_BLOB_EXECUTEMANY_CHUNK if blob else MC_EXECUTEMANY_CHUNK
            for i in range(0, len(rows), ch):  # one statement per call -> must chunk
                cur.executemany(ins, rows[i : i + ch])
    elif method == "multirow":
        ch = BLOB_MULTIROW_CHUNK if blob else MULTIROW_CHUNK
        full_sql = f"INSERT INTO {table} VALUES " + ",".join([ph] * ch)
        for i in range(0, len(rows), ch):
            part = rows[i : i + ch]
            sql = (
                full_sql
                if len(part) == ch
                else f"INSERT INTO {table} VALUES " + ",".join([ph] * len(part))
            )
            cur.execute(sql, [v for r in part for v in r])
    elif method == "loaddata":
        path = os.path.join(HERE, f"infile_{os.getpid()}.tsv")
        prep = write_infile(rows, path, blob)
        try:
            if blob:
                cur.execute(
                    f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE tb CHARACTER SET binary "
                    "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
                )
            else:
                cur.execute(
                    f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE t "
                    "FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n'"
                )
        finally:
            os.unlink(path)
    else:
        raise ValueError(method)
    secs = time.perf_counter() - t0
    cpu = cpu_s() - c0
    peak = maxrss_kb()
    # verify
    if blob:
        cur.execute(
            "SELECT COUNT(*), SUM(LENGTH(term_ids)+LENGTH(counts)), "
            "SUM(CRC32(term_ids)) + SUM(CRC32(counts)) + SUM(CRC32(`key`)) FROM tb"
        )
        cnt, nbytes, crc = cur.fetchone()
        import zlib

        exp_crc = sum(zlib.crc32(a) + zlib.crc32(b) + zlib.crc32(k) for k, a, b in rows)
        ok = cnt == len(rows) and int(nbytes) == 1200 * len(rows) and int(crc) == exp_crc
    else:
        cur.execute(
            "SELECT COUNT(*), SUM(entry_id), SUM(related_id), SUM(`rank`), SUM(score) FROM t"
        )
        cnt, se, sr, sk, ss = cur.fetchone()
        ok = (
            cnt == len(rows)
            and int(se) == sum(r[0] for r in rows)
            and int(sr) == sum(r[1] for r in rows)
            and int(sk) == sum(r[3] for r in rows)
            and abs(float(ss) - sum(r[2] for r in rows)) < 1e-6 * len(rows)
        )
    cur.close()
    conn.close()
    return {
        "secs": secs,
        "cpu_secs": cpu,
        "rss0_kb": rss0,
        "peak_kb": peak,
        "rows": len(rows),
        "verified": bool(ok),
        "prep_secs": prep,
    }


def trial_probe(driver):
    """Behaviour checks: types returned, autocommit default, executemany of 1M rows in one call."""
    out = {}
    conn = connect(driver)
    cur = conn.cursor()
    out["conn_class"] = type(conn).__name__
    cur.execute(
        "SELECT @@autocommit, @@character_set_client, @@character_set_results, "
        "@@collation_connection"
    )
    r = cur.fetchone()
    out["session_autocommit"] = int(r[0])
    out["charset"] = f"client={r[1]} results={r[2]} collation={r[3]}"
    ac = conn.get_autocommit() if driver == "pymysql" else conn.autocommit
    out["driver_autocommit_default"] = ac
    cur.execute(
        "CREATE TEMPORARY TABLE ty (t VARCHAR(20) CHARACTER SET utf8mb4, "
        "tx MEDIUMTEXT CHARACTER SET utf8mb4, vb VARBINARY(16), lb LONGBLOB, j JSON)"
    )
    cur.execute(
        "INSERT INTO ty VALUES (%s,%s,%s,%s,%s)",
        ("日本語🍣", "本文テキスト", b"\x00\x01\xff", b"\x00'\\\xff" * 3, '{"a": 1}'),
    )
    cur.execute("SELECT t, tx, vb, lb, j FROM ty")
    r = cur.fetchone()
    out["types"] = {
        k: type(v).__name__
        for k, v in zip(["VARCHAR", "MEDIUMTEXT", "VARBINARY", "LONGBLOB", "JSON"], r)
    }
    out["roundtrip_ok"] = (
        r[0] == "日本語🍣"
        and r[1] == "本文テキスト"
        and bytes(r[2]) == b"\x00\x01\xff"
        and bytes(r[3]) == b"\x00'\\\xff" * 3
    )
    cur.execute("SELECT id, title, body FROM entries WHERE id=1")
    r = cur.fetchone()
    out["entries_types"] = [type(v).__name__ for v in r]
    # executemany with all 1M rows in one call
    conn2 = connect(driver, autocommit=True)
    c2 = conn2.cursor()
    create_results_table(c2)
    rows = make_result_rows(N_RESULTS // 10)
    t0 = time.perf_counter()
    try:
        c2.executemany("INSERT INTO t VALUES (%s,%s,%s,%s)", rows)
        c2.execute("SELECT COUNT(*) FROM t")
        out["executemany_1M_single_call"] = (
            f"ok, {c2.fetchone()[0]} rows in {time.perf_counter() - t0:.1f}s"
        )
    except Exception as e:  # noqa: BLE001
        out["executemany_1M_single_call"] = (
            f"FAILED after {time.perf_counter() - t0:.1f}s: {type(e).__name__}: {e}"[:300]
        )
    # how does executemany get sent?  (statement count / size)
    try:
        conn2.close()
    except Exception:  # noqa: BLE001
        pass
    conn.close()
    return out


def trial_import(driver):
    t0 = time.perf_counter()
    import_driver(driver)
    t1 = time.perf_counter()
    conn = connect(driver, db=None)
    t2 = time.perf_counter()
    conn.close()
    return {"import_secs": t1 - t0, "connect_secs": t2 - t1}


# --------------------------------------------------------------------------
# orchestration (parent)
# --------------------------------------------------------------------------
def run_child(args, timeout=1800):
    cmd = [sys.executable, os.path.abspath(__file__), "--trial"] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def admin_conn(db=None):
    import pymysql

    return pymysql.connect(
        host=HOST,
        port=PORT,
        user=USER,
        password=PASSWORD,
        database=db,
        charset="utf8mb4",
        autocommit=True,
        local_infile=True,
    )


def setup_entries(scale):
    n = int(N_ENTRIES * scale)
    conn = admin_conn()
    cur = conn.cursor()
    cur.execute(
        f"CREATE DATABASE IF NOT EXISTS {DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )
    cur.execute(f"USE {DB}")
    cur.execute(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema=%s AND table_name='entries'",
        (DB,),
    )
    if cur.fetchone()[0]:
        cur.execute("SELECT COUNT(*), SUM(CHAR_LENGTH(body)) FROM entries")
        cnt, chars = cur.fetchone()
        if cnt >= n:
            print(f"# reusing existing entries table ({cnt} rows)", flush=True)
            cur.execute("SELECT SUM(CHAR_LENGTH(body)) FROM entries WHERE id <= %s", (n,))
            return n, int(cur.fetchone()[0])
        cur.execute("DROP TABLE entries")
    cur.execute(
        "CREATE TABLE entries (id INT PRIMARY KEY, title VARCHAR(200), body MEDIUMTEXT)"
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )
    t0 = time.perf_counter()
    rng = random.Random(20240601)
    path = os.path.join(HERE, "entries.tsv")
    total_chars = 0
    with open(path, "w", encoding="utf-8", buffering=1 << 22) as f:
        for i in range(1, N_ENTRIES + 1):  # always generate the full sequence for determinism
            title, body = make_entry(i, rng)
            if i <= n:
                f.write(f"{i}\t{title}\t{body}\n")
                total_chars += len(body)
    cur.execute(
        f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE entries CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n'"
    )
    os.unlink(path)
    cur.execute("SELECT COUNT(*), SUM(CHAR_LENGTH(body)), SUM(LENGTH(body)) FROM entries")
    cnt, chars, nbytes = cur.fetchone()
    mb = round(int(nbytes) / 1048576)
    assert cnt == n and int(chars) == total_chars, (cnt, chars, total_chars)
    print(
        f"# created entries: {cnt} rows, {total_chars} body chars "
        f"(avg {total_chars / n:.0f}), {mb} MB of utf8mb4 body bytes, in {time.perf_counter() - t0:.0f}s",
        flush=True,
    )
    conn.close()
    return n, total_chars


def du_kb(paths):
    p = subprocess.run(["du", "-sk", "-c"] + paths, capture_output=True, text=True)
    return int(p.stdout.strip().splitlines()[-1].split()[0])


def package_info():
    import glob
    import sysconfig

    sp = sysconfig.get_paths()["purelib"]
    info = {}
    groups = {
        "PyMySQL": glob.glob(f"{sp}/pymysql")
        + glob.glob(f"{sp}/[Pp]y[Mm]y[Ss][Qq][Ll]-*.dist-info"),
        "mysql-connector-python": glob.glob(f"{sp}/mysql")
        + glob.glob(f"{sp}/_mysql_connector*.so")
        + glob.glob(f"{sp}/mysql_connector_python-*.dist-info")
        + glob.glob(f"{sp}/mysqlx"),
    }
    for name, paths in groups.items():
        info[name] = {"kb": du_kb(paths), "paths": [os.path.relpath(p, sp) for p in paths]}
    info["mysql-connector-python"]["vendor_kb"] = du_kb(glob.glob(f"{sp}/mysql/vendor"))
    info["mysql-connector-python"]["ai_kb"] = du_kb(glob.glob(f"{sp}/mysql/ai"))
    for pkg in ("PyMySQL", "mysql-connector-python", "numpy"):
        p = subprocess.run(
            [sys.executable, "-m", "pip", "show", pkg], capture_output=True, text=True
        )
        meta = dict(l.split(": ", 1) for l in p.stdout.splitlines() if ": " in l)
        from importlib import metadata as md

        m = md.metadata(pkg)
        lic = (
            meta.get("License")
            or m.get("License-Expression")
            or "; ".join(c for c in (m.get_all("Classifier") or []) if c.startswith("License"))
        )
        info.setdefault(pkg, {}).update({"version": meta.get("Version"), "license": lic})
    return info


def fmt_med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main():
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep-db", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default="read,write,blob")
    args = ap.parse_args()
    only = set(args.only.split(","))
    T0 = time.perf_counter()

    conn = admin_conn()
    cur = conn.cursor()
    cur.execute(
        "SELECT VERSION(), @@local_infile, @@max_allowed_packet, @@innodb_buffer_pool_size, "
        "@@innodb_flush_log_at_trx_commit"
    )
    ver, linf, map_, bp, flush = cur.fetchone()
    conn.close()
    print(
        f"# server {ver}; @@local_infile={linf}; max_allowed_packet={map_}; "
        f"innodb_buffer_pool_size={bp >> 20} MB; flush_log_at_trx_commit={flush}",
        flush=True,
    )
    print(f"# python {sys.version.split()[0]}; reps={args.reps}; scale={args.scale}", flush=True)

    pk = package_info()
    print("# packages: " + json.dumps(pk, ensure_ascii=False), flush=True)

    n, total_chars = setup_entries(args.scale)

    # import / connect times: 5 interleaved fresh processes per driver
    imp = {d: [] for d in DRIVERS}
    for rep in range(5):
        for d in DRIVERS[rep % 3 :] + DRIVERS[: rep % 3]:
            imp[d].append(run_child(["import", d]))
    # behaviour probes
    probes = {d: run_child(["probe", d]) for d in DRIVERS}
    for d in DRIVERS:
        print(f"# probe {d}: " + json.dumps(probes[d], ensure_ascii=False), flush=True)

    ops = []
    if "read" in only:
        ops += [("read", m) for m in ("buffered", "streaming")]
    if "write" in only:
        ops += [("write", m) for m in ("executemany", "multirow", "loaddata")]
    if "blob" in only:
        ops += [("blob", m) for m in ("executemany", "multirow", "loaddata")]

    res = {}  # (op, method, driver) -> list of dicts
    for rep in range(args.reps):
        for op, method in ops:
            order = DRIVERS[rep % 3 :] + DRIVERS[: rep % 3]  # rotate who goes first
            if op == "read" and method == "streaming":
                order = order + ["mysql_cli"]  # server+C-client floor, for reference only
            for d in order:
                r = run_child([op, d, method, args.scale])
                if op == "read" and "error" not in r and d != "mysql_cli":
                    r["verified"] = r["rows"] == n and r["chars"] == total_chars
                res.setdefault((op, method, d), []).append(r)
                print(f"rep{rep} {op:5s} {method:11s} {d:8s} " + json.dumps(r), flush=True)
        print(f"# rep {rep} done at {time.perf_counter() - T0:.0f}s", flush=True)

    # ---------------- report ----------------
    sizes = {
        "read": f"{n} rows x ~{BODY_CHARS} JA chars",
        "write": f"{int(N_RESULTS * args.scale)} rows",
        "blob": f"{int(N_BLOBS * args.scale)} rows x 1.2 KB",
    }
    print("\n## Medians (seconds; ratio = time / fastest method+driver for that operation)\n")
    print(
        "| operation | method | driver | median s | ratio | runs (s) | client CPU s (median) | peak RSS delta MB | verified |"
    )
    print("|---|---|---|---:|---:|---|---:|---:|---|")
    summary = {}
    for op in ("read", "write", "blob"):
        rows_ = [(k, v) for k, v in res.items() if k[0] == op]
        if not rows_:
            continue
        meds = {k: fmt_med([x.get("secs") for x in v]) for k, v in rows_}
        best = min(m for k, m in meds.items() if m is not None and k[2] != "mysql_cli")
        for k, v in rows_:
            m = meds[k]
            rss = fmt_med([(x["peak_kb"] - x["rss0_kb"]) / 1024 for x in v if "peak_kb" in x])
            rss = float("nan") if rss is None else rss
            cpu = fmt_med([x.get("cpu_secs") for x in v])
            ver_ = all(x.get("verified") for x in v) if k[2] != "mysql_cli" else "n/a (reference)"
            errs = [x["error"] for x in v if "error" in x]
            runs = ", ".join(f"{x['secs']:.2f}" if "secs" in x else "ERR" for x in v)
            print(
                f"| {op} ({sizes[op]}) | {k[1]} | {k[2]} | {m:.2f} | {m / best:.2f} | {runs} | "
                f"{cpu:.2f} | {rss:.0f} | {ver_}{' ' + errs[0] if errs else ''} |"
                if m is not None
                else f"| {op} | {k[1]} | {k[2]} | ERR | | | | {errs[:1]} |"
            )
            summary["/".join(k)] = {"median": m, "ratio": (m / best) if m else None, "runs": v}
    print("\n## Import / connect (median of 5 fresh processes)\n")
    print("| driver | import s | connect s |")
    print("|---|---:|---:|")
    for d in DRIVERS:
        print(
            f"| {d} | {fmt_med([x.get('import_secs') for x in imp[d]]):.3f} | "
            f"{fmt_med([x.get('connect_secs') for x in imp[d]]):.4f} |"
        )
    loadprep = {
        d: fmt_med([x.get("prep_secs") for x in res.get(("write", "loaddata", d), [])])
        for d in DRIVERS
    }
    print(
        f"\n# LOAD DATA (1M rows): median seconds spent writing the TSV file (included above): {loadprep}"
    )
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(
            {"server": ver, "packages": pk, "import": imp, "probes": probes, "results": summary},
            f,
            indent=1,
            ensure_ascii=False,
            default=str,
        )

    if not args.keep_db:
        conn = admin_conn()
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.close()
        print(f"# dropped database {DB}")
    print(f"# total wall time {time.perf_counter() - T0:.0f}s")


def trial_main(argv):
    kind = argv[0]
    if kind == "import":
        out = trial_import(argv[1])
    elif argv[1] == "mysql_cli":
        out = trial_read(argv[1], argv[2], float(argv[3]))
    else:
        import_driver(argv[1])
        if kind == "probe":
            out = trial_probe(argv[1])
        elif kind == "read":
            out = trial_read(argv[1], argv[2], float(argv[3]))
        elif kind in ("write", "blob"):
            out = trial_write(argv[1], argv[2], float(argv[3]), blob=(kind == "blob"))
        else:
            raise SystemExit(f"unknown trial {kind}")
    print(json.dumps(out, ensure_ascii=False, default=str))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--trial":
        trial_main(sys.argv[2:])
    else:
        main()
