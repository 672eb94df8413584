"""Connecting to the database: SQLite (embedded, migrated automatically) or PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from boundary.api.db import migrate
from boundary.api.errors import ConfigError, DatabaseError


def redact_url(url: str | URL) -> str:
    """The URL with any password hidden, for messages; a URL too malformed to parse loses its
    credentials altogether."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"//[^/@]*@", "//***@", str(url))


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``, with the settings each backend needs. Raises ConfigError."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL '{url}': {_first_line(exc)}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"unsupported database '{backend}' in {redact_url(parsed)}: use sqlite or postgresql")
    try:
        if backend == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                parent = Path(database).expanduser().resolve().parent
                if not parent.is_dir():
                    raise DatabaseError(f"cannot open database {redact_url(parsed)}: folder {parent} does not exist")
            engine = create_engine(parsed, connect_args={"timeout": 60})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    except NoSuchModuleError as exc:
        raise ConfigError(f"no driver for {redact_url(parsed)}: {_first_line(exc)}") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(f"no driver for {redact_url(parsed)}: {exc}") from None
    return engine


class Database:
    """An engine and a session factory, checked to be reachable and at the schema's head."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        return redact_url(self.engine.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @classmethod
    def connect(cls, url: str, *, auto_migrate: bool | None = None, check: bool = True) -> Database:
        """Open ``url``. SQLite files are migrated to head automatically (the embedded mode);
        other databases must already be at head (``boundary db upgrade``) unless
        ``auto_migrate`` is true. ``check=False`` skips the schema check (for migrating)."""
        engine = make_engine(url)
        db = cls(engine)
        db.ping()
        if auto_migrate is None:
            auto_migrate = db.dialect == "sqlite"
        if auto_migrate:
            db.upgrade()
        elif check:
            db.check_schema()
        return db

    @classmethod
    @contextmanager
    def opened(cls, url: str, *, auto_migrate: bool | None = None, check: bool = True) -> Iterator[Database]:
        """``connect`` for the length of a ``with`` block, disposed of at its end: the one way a
        command opens and closes the database."""
        db = cls.connect(url, auto_migrate=auto_migrate, check=check)
        try:
            yield db
        finally:
            db.dispose()

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (OperationalError, SQLAlchemyError, OSError) as exc:
            self.engine.dispose()
            raise DatabaseError(f"cannot connect to database {self.url}: {_first_line(exc)}") from None

    def upgrade(self, revision: str = "head") -> None:
        try:
            migrate.upgrade(self.engine, revision)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"migrating {self.url} failed: {_first_line(exc)}") from None

    def revision(self) -> str | None:
        """The schema revision the database is at (None: not migrated at all)."""
        return migrate.current_revision(self.engine)

    def check_schema(self) -> None:
        current = self.revision()
        head = migrate.head_revision()
        if current != head:
            raise DatabaseError(
                f"database {self.url} is at schema revision {current or 'none'}, expected {head}: "
                "run `boundary db upgrade`"
            )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
