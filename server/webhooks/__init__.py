"""Webhook delivery (sandbox part 2): signing, URL safety, the outbox dispatcher and its worker."""
