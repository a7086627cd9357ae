"""Persistence: SQLAlchemy 2 models, engine/session setup and Alembic migrations."""

from server.db import models_clinical as models_clinical  # the clinical tables on the same metadata
