"""Insider's data rules, written once: names, value formats, default attributes, limits.

Every check of a name or value against Insider's rules (config validation, the
encoder, the pull loader) reads them from here. The emulator keeps its own copy
on purpose, so a wrong rule in one is caught by the other.
"""

from __future__ import annotations

import re

INSIDER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
"""Attribute, custom identifier and event parameter names."""
EVENT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
"""Event names as Insider enforces them: lowercase only. The published pattern
(``EVENT_NAME_PUBLISHED``) allows capitals, but the reference's saved example
"Invalid event name" rejects ``homepageView``."""
EVENT_NAME_PUBLISHED = r"^[a-z0-9][a-zA-Z0-9._-]*$"
"""The pattern Insider publishes and names in its error key."""

EMAIL_RE = r"^.+@.+\..+$"
PHONE_RE = r"^\+[1-9][0-9]{6,14}$"
COUNTRY_RE = r"^[A-Z]{2}$"
LANGUAGE_RE = r"^[a-z]{2}_[A-Z]{2}$"
CURRENCY_RE = r"^[A-Z]{3}$"
EVENT_NAME_RE = r"^[a-z0-9][a-z0-9._-]*$"
RFC3339_FMT = "%Y-%m-%dT%H:%M:%SZ"
CUSTOM_ATTRIBUTE_CAP = 255
"""Custom attributes a tenant may hold."""

DEFAULT_ATTRIBUTES = frozenset(
    {
        "name", "surname", "age", "gender", "birthday", "language", "country", "city",
        "email", "phone_number", "email_optin", "sms_optin", "whatsapp_optin", "gdpr_optin",
        "static_segment_id", "list_id", "lo",
        # Device attributes: Insider's own Segment destination sends them at the root,
        # and the reference deletes app_version as a default attribute.
        "app_version", "last_ip", "timezone", "locale", "idfa", "model", "carrier",
        "os_version", "platform",
    }
)
"""Attributes that live at the root of ``attributes``; all others go under ``custom``."""

STANDARD_EVENT_PARAMS = frozenset(
    {
        "product_id", "name", "taxonomy", "url", "currency", "quantity", "unit_price",
        "unit_sale_price", "product_image_url", "event_group_id", "variant_id", "locale",
        "color", "size", "shipping_cost", "promotion_name", "promotion_discount", "referrer",
        "campaign_id", "campaign_name", "user_agent",
    }
)
"""Event parameters that sit at the root of ``event_params``; others go under ``custom``."""
