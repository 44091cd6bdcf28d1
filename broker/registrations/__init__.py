"""NGSI-v2 registrations (context providers) and request forwarding to them."""
