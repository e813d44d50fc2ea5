-- One row per customer, shaped for Insider's user attributes.
select
  customer_id,
  lower(email)          as email,
  phone                 as phone_number,
  first_name,
  last_name,
  country,
  city,
  birthday,
  email_optin,
  lifetime_value,
  favorite_categories,
  signed_up_at
from raw_customers
