"""Partners, their keys and products."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from server.db.models import ApiKey, Partner, Product


def get(session: Session, partner_id: str) -> Partner | None:
    return session.get(Partner, partner_id)


def get_with_key(session: Session, partner_id: str) -> tuple[Partner, ApiKey] | None:
    row = session.execute(
        select(Partner, ApiKey).join(ApiKey, ApiKey.partner_id == Partner.id).where(Partner.id == partner_id)
    ).first()
    return (row[0], row[1]) if row else None


def get_by_slug(session: Session, slug: str) -> Partner | None:
    return session.scalar(select(Partner).where(Partner.slug == slug))


def list_all(session: Session) -> Sequence[Partner]:
    return session.scalars(select(Partner).order_by(Partner.created_at, Partner.id)).all()


def slug_taken(session: Session, slug: str) -> bool:
    return session.scalar(select(Partner.id).where(Partner.slug == slug)) is not None


def products(session: Session, partner_id: str) -> Sequence[Product]:
    return session.scalars(
        select(Product)
        .where(Product.partner_id == partner_id, Product.active.is_(True))
        .order_by(Product.position, Product.id)
    ).all()


def product(session: Session, partner_id: str, category: str) -> Product | None:
    return session.scalar(
        select(Product).where(
            Product.partner_id == partner_id, Product.category == category, Product.active.is_(True)
        )
    )


_products = Product.__table__.c
_CURRENCY = select(_products.currency).where(
    _products.partner_id == bindparam("partner_id"),
    _products.category == bindparam("category"),
    _products.active.is_(True),
)  # built once (create referral runs it on every request)


def product_currency(conn: Connection, partner_id: str, category: str) -> str | None:
    """The currency of the partner's active product ``category``; None when it has no such product."""
    currency: str | None = conn.execute(_CURRENCY, {"partner_id": partner_id, "category": category}).scalar()
    return currency
