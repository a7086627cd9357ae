"""GET /partner/products (seed 000 §6.5, seed 003 §9.3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server import context, serializers
from server.repositories import partners as partners_repo
from server.state import AppState


class ProductHandlers:
    def __init__(self, state: AppState) -> None:
        self.state = state

    def operations(self) -> dict[str, Callable[..., Any]]:
        return {"listProducts": self.list_products}

    def list_products(self) -> tuple[dict[str, Any], int]:
        ctx = context.get()
        partner = ctx.partner
        assert partner is not None
        with self.state.db.session() as session:
            products = partners_repo.products(session, partner.id)
            items = [serializers.product(p, partner, self.state.settings.base_url) for p in products]
        return {"products": items}, 200
