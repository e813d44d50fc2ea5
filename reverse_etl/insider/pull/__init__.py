"""Pull Insider's raw data export (insider-api.md §7) back into the warehouse.

``reverse-etl pull NAME`` / :func:`reverse_etl.pull`: the export definitions live
under ``exports:`` in syncs.yml (schema: :mod:`reverse_etl.insider.pull.config`).

Modules, in the order a pull uses them: ``guard`` (one request per UTC day),
``hook`` (the receiver for Insider's ``{"url": ...}``), ``request`` (the POST),
``download`` (streaming, retried), ``load`` / ``snowflake_load`` (into the
warehouse, ``c_`` columns mapped back) and ``api`` (composes them).
"""
