"""Keys and identifiers are trimmed text: the fast spelling gives the plain one's value for every string."""

from __future__ import annotations

import duckdb

from reverse_etl.diff.sqltext import trimmed_text_sql


def test_the_fast_trim_equals_nullif_trim_for_every_code_point_in_every_position() -> None:
    con = duckdb.connect()
    con.execute("""CREATE TABLE s AS SELECT v FROM (
                     SELECT chr(i::INTEGER) AS c FROM range(1, 1114112) t(i) WHERE i NOT BETWEEN 55296 AND 57343) x,
                   LATERAL (VALUES (c), ('a' || c), (c || 'a'), ('a' || c || 'b'), (c || c || 'a'), ('a' || c || c))
                   AS w(v)""")
    con.execute("INSERT INTO s VALUES (NULL), (''), (' '), ('  a  '), ('\u00a0\u3000'), ('\tb\n')")
    differing = con.execute(f"SELECT count(*), list(v)[1:3] FROM s "
                            f"WHERE nullif(trim(v), '') IS DISTINCT FROM {trimmed_text_sql('v')}").fetchall()
    assert differing == [(0, None)]
    assert con.execute(f"SELECT {trimmed_text_sql('42')}, {trimmed_text_sql(chr(39) + ' x ' + chr(39), portable=True)}"
                       ).fetchall() == [("42", "x")]
