"""Webhooks: signed events sent to the URLs an owner registered when their jobs end."""
