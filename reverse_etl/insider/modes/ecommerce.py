"""The ``ecommerce`` preset of user_events: Segment-style e-commerce events → Insider's.

``event: {preset: ecommerce}`` maps a model of Segment e-commerce events
(insider-api.md §9) without a hand-written mapping. Before the usual events
machinery runs, :meth:`EcommerceEvents.prepare` builds one DuckDB view over the
model rows that

- names each event the Insider way (``Order Completed`` → ``purchase``; any
  other name → its lower_snake_case, a custom event);
- explodes the ``products`` list of ``cart_page_view``, ``checkout_page_view``
  and ``purchase`` into one event per product (key ``<source key>:<product
  position, from 1>``; ``cart_id`` / ``checkout_id`` else ``order_id`` /
  ``order_id`` → ``event_group_id``), as Insider's own Segment destination does;
- derives the standard and custom parameters from the columns the model
  actually has (``category`` → ``taxonomy``, ``price`` → ``unit_price`` and,
  without a ``sale_price``, ``unit_sale_price``; ``variant`` → ``variant_id``;
  the page context ``context_page_url`` / ``context_page_referrer`` /
  ``context_user_agent`` → ``url`` / ``referrer`` / ``user_agent`` where the
  event has none of its own; ``tax``, ``revenue``... custom).

The differences from Insider's Segment destination, and why, are in the README.

The view keeps every model column, so identifiers, the timestamp, the key and
the sync's own ``params:`` (which win over the preset's) read it unchanged.
Encoding, validation, required parameters, the TTL, keys and payloads are the
ordinary :class:`UserEvents` ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import duckdb

from reverse_etl.diff.sqltext import ident, literal
from reverse_etl.errors import ConfigError
from reverse_etl.insider.config import SyncConfig
from reverse_etl.insider.fields import Field, param_field
from reverse_etl.insider.modes.events import UserEvents

VIEW = "ecommerce_rows"
PREFIX = "ecommerce:"
"""Computed columns of the view; a ``:`` keeps them apart from any model column."""
INDEX = PREFIX + "index"
PRODUCTS = PREFIX + "products"
PRODUCT = PREFIX + "product"

# insider-api.md §9, keyed by the lower_snake_case of the source name, so the
# Segment names (``Order Completed``) and their warehouse tables (``order_completed``) both match.
EVENT_NAMES = {
    "product_viewed": "product_detail_page_view",
    "product_list_viewed": "listing_page_view",
    "product_added": "item_added_to_cart",
    "product_removed": "item_removed_from_cart",
    "cart_viewed": "cart_page_view",
    "checkout_started": "checkout_page_view",
    "checkout_step_viewed": "checkout_page_view",
    "order_completed": "purchase",
    "user_registered": "sign_up_confirmation",
}
GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "cart_page_view": ("cart_id",),
    "checkout_page_view": ("checkout_id", "order_id"),
    "purchase": ("order_id",),
}
"""Events sent once per product, and the columns (first non-null) that group them (→ ``event_group_id``)."""

Level = Literal["product", "both", "order"]
Kind = Literal["text", "number", "taxonomy", "any"]


@dataclass(frozen=True)
class PresetParam:
    """One Insider parameter the preset fills from the first non-null source it finds.

    ``level``: ``product`` values come from the product for an exploded row and
    from the row's own columns otherwise; ``both`` tries the product first, then
    the row (currency); ``order`` reads the row only.
    """

    name: str
    sources: tuple[str, ...]
    level: Level
    kind: Kind


PARAMS: tuple[PresetParam, ...] = (
    PresetParam("product_id", ("product_id",), "product", "text"),
    PresetParam("name", ("name",), "product", "text"),
    PresetParam("taxonomy", ("category", "taxonomy"), "product", "taxonomy"),
    PresetParam("unit_price", ("price", "unit_price"), "product", "number"),
    PresetParam("unit_sale_price", ("sale_price", "unit_sale_price", "price", "unit_price"), "product", "number"),
    PresetParam("quantity", ("quantity",), "product", "number"),
    PresetParam("product_image_url", ("image_url", "product_image_url"), "product", "text"),
    # Page context as Segment's warehouse columns name it: a property wins over the context.
    PresetParam("url", ("url", "context_page_url"), "product", "text"),
    PresetParam("variant_id", ("variant_id", "variant"), "product", "text"),  # Insider's mapping
    PresetParam("color", ("color",), "product", "any"),
    PresetParam("size", ("size",), "product", "any"),
    PresetParam("currency", ("currency",), "both", "text"),
    # Custom parameters (not in STANDARD_EVENT_PARAMS, so under event_params.custom).
    PresetParam("sku", ("sku",), "product", "text"),
    PresetParam("brand", ("brand",), "product", "text"),
    PresetParam("tax", ("tax",), "order", "number"),
    PresetParam("revenue", ("revenue",), "order", "number"),
    PresetParam("shipping", ("shipping",), "order", "number"),
    PresetParam("discount", ("discount",), "order", "number"),
    PresetParam("coupon", ("coupon",), "order", "text"),
    PresetParam("affiliation", ("affiliation",), "order", "text"),
    PresetParam("referrer", ("referrer", "context_page_referrer"), "order", "text"),
    PresetParam("user_agent", ("user_agent", "context_user_agent"), "order", "text"),
    # Remaining standard parameters, when the model has a column of that name.
    *(PresetParam(n, (n,), "order", "any") for n in (
        "locale", "shipping_cost", "promotion_name", "promotion_discount",
        "campaign_id", "campaign_name")),
)

_NUMERIC = re.compile(r"^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|REAL|DECIMAL.*)$")
Typed = tuple[str, str]
"""(SQL expression, DuckDB type)."""


class EcommerceEvents(UserEvents):
    """``mode: user_events`` with ``event: {preset: ecommerce}``."""

    reshapes_rows = True  # prepare() explodes each event's products

    def __init__(self, sync: SyncConfig) -> None:
        super().__init__(sync)
        if self.event.name is not None:
            raise ConfigError(f"sync {sync.name!r}: event.preset ecommerce names events from "
                              f"event.name_column (default 'event'); remove event.name")
        self.name_source = self.event.name_column or "event"
        self.index = Field("event", "product_index", False, INDEX)
        self.key_source: str | None = self.event.key

    @property
    def key_label(self) -> str:
        base = f"event key ({self.key_source})" if self.key_source else "event digest"
        return base + " [+ ':' product position]"

    def prepare(self, con: duckdb.DuckDBPyConnection, source_table: str, columns: dict[str, str]) -> str:
        """Create the normalised event view over ``source_table``; fields then read it."""
        lower = {name.lower(): name for name in columns}
        source_name = lower.get(self.name_source.lower())
        if source_name is None:
            available = ", ".join(sorted(columns)) or "none"
            raise ConfigError(f"sync {self.sync.name!r}: event.name_column {self.name_source!r} (the "
                              f"source event name) is not a column of the model (columns: {available})")
        if self.event.key is None and "message_id" in lower:
            self.key_source = lower["message_id"]
        products = _products_sql(con, source_table, lower, columns)
        product_fields = _struct_fields(con, source_table, products) if products else {}
        top = {name: ("m." + ident(real), columns[real]) for name, real in lower.items()}
        params, param_sql = self._preset_params(top, product_fields)

        con.execute(f"""
            CREATE OR REPLACE VIEW {VIEW} AS
            WITH snake AS (
              SELECT m.*, {_snake_case(f"m.{ident(source_name)}")} AS "{PREFIX}snake"{
                  f", {products} AS {ident(PRODUCTS)}" if products else ""}
              FROM {source_table} m
            ),
            named AS (
              SELECT s.* EXCLUDE ("{PREFIX}snake"), {_event_name_sql('s."' + PREFIX + 'snake"')}
                     AS {ident(PREFIX + "event_name")}
              FROM snake s
            ),
            exploded AS (
              SELECT n.*, {_index_sql(products)} AS {ident(INDEX)} FROM named n
            ),
            m AS (
              SELECT e.*, {f"e.{ident(PRODUCTS)}[e.{ident(INDEX)}]" if products else "NULL"} AS {ident(PRODUCT)}
              FROM exploded e
            )
            SELECT m.* EXCLUDE ({ident(PRODUCT)}{", " + ident(PRODUCTS) if products else ""}){
                "".join(f", {sql} AS {ident(PREFIX + name)}" for name, sql in param_sql.items())}
            FROM m
        """)

        self.name = Field("event", "event_name", False, PREFIX + "event_name")
        self.params = params
        self.key_column = Field("event", "key", False, self.key_source) if self.key_source else None
        self.fields = [*self.ids, self.name, self.timestamp, *self.params]
        self.columns_only = [*([self.key_column] if self.key_column else []), self.index]
        return VIEW

    def _preset_params(self, top: dict[str, Typed],
                       product: dict[str, Typed]) -> tuple[list[Field], dict[str, str]]:
        """The parameter fields (preset ones, then the sync's own) and the view's SQL per preset one."""
        mapped = set(self.event.params)  # the sync's own params: win over the preset's
        sql: dict[str, str] = {}
        for p in PARAMS:
            if p.name in mapped:
                continue
            expr = _param_sql(p, top, product)
            if expr is not None:
                sql[p.name] = expr
        group = _group_id_sql(top)
        if group is not None and "event_group_id" not in mapped:
            sql["event_group_id"] = group
        fields = [param_field(name, PREFIX + name) for name in sql]
        fields += [param_field(name, column) for name, column in self.event.params.items()]
        return fields, sql

    def key_sql(self, column_of: Callable[[Field], str], value_of: Callable[[Field], str],
                *, portable: bool = False) -> str:
        # Each product of an exploded event is its own event: its key gets the
        # product's position, so it is deduplicated (and resent) on its own.
        base = super().key_sql(column_of, value_of, portable=portable)
        idx = column_of(self.index)
        return f"CASE WHEN {idx} IS NULL THEN {base} ELSE {base} || ':' || CAST({idx} AS VARCHAR) END"


# ---------------------------------------------------------------- SQL pieces
def _snake_case(expr: str) -> str:
    """lower_snake_case of a name: ``Order Completed``, ``OrderCompleted``, ``order-completed`` → ``order_completed``."""
    text = f"strip_accents(trim(CAST({expr} AS VARCHAR)))"
    split_camel = f"regexp_replace({text}, {literal('([a-z0-9])([A-Z])')}, {literal(chr(92) + '1_' + chr(92) + '2')}, 'g')"
    underscored = f"regexp_replace({split_camel}, '[^A-Za-z0-9]+', '_', 'g')"
    return f"nullif(lower(trim({underscored}, '_')), '')"


def _event_name_sql(snake: str) -> str:
    whens = " ".join(f"WHEN {literal(src)} THEN {literal(dst)}" for src, dst in EVENT_NAMES.items())
    return f"CASE {snake} {whens} ELSE {snake} END"


def _index_sql(products: str | None) -> str:
    """Per row, the product positions to emit (unnested): 1..n for a cart/purchase with products, else NULL."""
    if not products:
        return "NULL::BIGINT"
    events = ", ".join(literal(e) for e in GROUP_COLUMNS)
    plist = f"n.{ident(PRODUCTS)}"
    return (f"unnest(CASE WHEN n.{ident(PREFIX + 'event_name')} IN ({events}) AND len({plist}) > 0 "
            f"THEN range(1, len({plist}) + 1) ELSE [NULL::BIGINT] END)")


def _products_sql(con: duckdb.DuckDBPyConnection, table: str, lower: dict[str, str],
                  types: dict[str, str]) -> str | None:
    """SQL of the ``products`` list of structs (over ``m``), or None when the model has none.

    A LIST of STRUCTs is used as is; JSON text (VARCHAR or JSON) is parsed with
    the structure DuckDB infers over the whole column. Anything else (a list of
    ids, say) is not a product list and is left alone.
    """
    real = lower.get("products")
    if real is None:
        return None
    col, kind = "m." + ident(real), types[real].upper()
    if kind.startswith("STRUCT(") and kind.endswith("[]"):
        return col
    if kind not in ("VARCHAR", "JSON"):
        return None
    valid = f"CASE WHEN json_valid({col}) THEN json({col}) END"
    rows = con.execute(f"SELECT json_group_structure({valid}) FROM {table} m").fetchall()
    structure = str(rows[0][0]) if rows and rows[0][0] is not None else ""
    if not structure.startswith("[{"):
        return None
    return f"CASE WHEN json_valid({col}) AND json_type({col}) = 'ARRAY' THEN from_json({col}, {literal(structure)}) END"


def _struct_fields(con: duckdb.DuckDBPyConnection, table: str, products: str) -> dict[str, Typed]:
    """Lower-cased product field → (SQL over the view's current product, type)."""
    rows = con.execute(f"DESCRIBE SELECT unnest(p) FROM (SELECT unnest({products}) AS p FROM {table} m)").fetchall()
    return {str(name).lower(): (f"struct_extract(m.{ident(PRODUCT)}, {literal(str(name))})", str(kind))
            for name, kind, *_ in rows}


def _param_sql(p: PresetParam, top: dict[str, Typed], product: dict[str, Typed]) -> str | None:
    """SQL of one preset parameter over the view's ``m``, or None when no source column exists."""
    row = [top[s] for s in p.sources if s in top]
    item = [product[s] for s in p.sources if s in product] if p.level != "order" else []
    if not row and not item:
        return None
    if p.level == "both" or p.level == "order":
        return _coalesce(_unify([*item, *row], p.kind))
    # An exploded row describes its product alone: the row's own product columns
    # (e.g. a flattened first product) must not leak into it.
    unified = _unify([*item, *row], p.kind)
    item_sql, row_sql = unified[:len(item)], unified[len(item):]
    exploded = _coalesce(item_sql) if item_sql else "NULL"
    single = _coalesce(row_sql) if row_sql else "NULL"
    return f"CASE WHEN m.{ident(INDEX)} IS NOT NULL THEN {exploded} ELSE {single} END"


def _group_id_sql(top: dict[str, Typed]) -> str | None:
    """``event_group_id``: the cart / checkout / order id for the events grouped by one, else an ``event_group_id`` column."""
    whens = [f"WHEN {literal(event)} THEN {_coalesce([f'CAST({top[c][0]} AS VARCHAR)' for c in cols if c in top])}"
             for event, cols in GROUP_COLUMNS.items() if any(c in top for c in cols)]
    mapped = f"CASE m.{ident(PREFIX + 'event_name')} {' '.join(whens)} END" if whens else None
    own = f"CAST({top['event_group_id'][0]} AS VARCHAR)" if "event_group_id" in top else None
    parts = [p for p in (mapped, own) if p]
    return _coalesce(parts) if parts else None


def _coalesce(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def _unify(values: Sequence[Typed], kind: Kind) -> list[str]:
    """The expressions cast to one type when their types differ (DuckDB will not mix text and numbers)."""
    kinds = {t.upper() for _, t in values}
    if len(kinds) <= 1 or all(_NUMERIC.match(k) for k in kinds):
        return [sql for sql, _ in values]
    if kind == "number":
        return [sql if _NUMERIC.match(t.upper()) else f"TRY_CAST({sql} AS DOUBLE)" for sql, t in values]
    if kind == "taxonomy":
        # A single category is a one-element taxonomy; lists are kept as lists.
        return [f"CAST({sql} AS VARCHAR[])" if t.endswith("[]")
                else f"CASE WHEN {sql} IS NOT NULL THEN [CAST({sql} AS VARCHAR)] END" for sql, t in values]
    return [f"CAST({sql} AS VARCHAR)" for sql, _ in values]
