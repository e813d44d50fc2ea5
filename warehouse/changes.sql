-- Edits between the demo's two runs: 5 changed, 2 removed, 3 added customers.
UPDATE raw_customers SET city = 'Paris', country = 'FR' WHERE customer_id IN ('c00001', 'c00002', 'c00003');
UPDATE raw_customers SET lifetime_value = 5000 WHERE customer_id IN ('c00004', 'c00005');
DELETE FROM raw_customers WHERE customer_id IN ('c00998', 'c00999');
INSERT INTO raw_customers
SELECT 'c9000' || i, 'new' || i || '@example.com', '+447900000' || i, 'New', 'Customer', 'GB', 'London',
       DATE '1990-05-01' + INTERVAL (i) DAY, true, 10.00, ['tech'], TIMESTAMP '2026-11-20 09:00:00'
FROM range(1, 4) AS t(i);
