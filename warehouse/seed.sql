-- The example project's warehouse: 1,000 deterministic customers.
-- demo.py runs this into warehouse.duckdb; warehouse/changes.sql then edits it
-- so the second sync run has something to send.
CREATE OR REPLACE TABLE raw_customers AS
SELECT
  'c' || lpad(i::VARCHAR, 5, '0')                          AS customer_id,
  'customer' || i || '@example.com'                         AS email,
  '+4479' || lpad(((i * 7919) % 100000000)::VARCHAR, 8, '0') AS phone,
  (['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald'])[i % 6 + 1] AS first_name,
  (['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth'])[i % 5 + 1] AS last_name,
  (['GB', 'TR', 'US', 'DE'])[i % 4 + 1]                     AS country,
  (['London', 'Istanbul', 'New York', 'Berlin'])[i % 4 + 1] AS city,
  DATE '1970-01-01' + INTERVAL ((i * 13) % 15000) DAY       AS birthday,
  i % 3 <> 0                                                AS email_optin,
  round(((i * 37) % 2000) + 0.5, 2)::DECIMAL(10, 2)         AS lifetime_value,
  list_slice(['shoes', 'books', 'garden', 'tech'], 1 + i % 4, 4) AS favorite_categories,
  TIMESTAMP '2026-01-01 00:00:00' + INTERVAL (i) HOUR       AS signed_up_at
FROM range(1, 1001) AS t(i);
