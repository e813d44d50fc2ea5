-- Customers worth more than 1,000: built on the customers model.
select customer_id, email, lifetime_value, 'gold' as vip_tier
from {{ ref('customers') }}
where lifetime_value > 1000
