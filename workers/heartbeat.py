"""A delivery's heartbeat: a thread that renews the lease of the batch being worked on every
heartbeat interval, while the work runs (a long engine call included), and says when the
lease was lost. See docs/fleet.md, "Leases"."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from boundary.api.batch_state import Holder, renew
from boundary.api.db import Database

log = logging.getLogger("boundary.worker")


class Heartbeat:
    """``with Heartbeat(db, batch_id, holder):`` renews the lease until the block ends, or until
    the batch is no longer this worker's (the lease ran out and the batch was queued again, or
    another worker took it): renewing then stops, and finishing the batch will be refused."""

    def __init__(self, db: Database, batch_id: int, holder: Holder):
        self.db, self.batch_id, self.holder = db, batch_id, holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{batch_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        failing = False
        while not self._stop.wait(self.holder.lease.heartbeat_s):
            try:
                with self.db.session() as session:
                    held = renew(session, self.batch_id, self.holder)
            except Exception as exc:  # the database is down: try again next beat; the lease may run out
                if not failing:
                    log.warning("batch %s: could not renew the lease (%s); trying every %gs", self.batch_id,
                                str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__,
                                self.holder.lease.heartbeat_s)
                failing = True
                continue
            if failing and held:
                log.warning("batch %s: lease renewed again", self.batch_id)
            failing = False
            if not held:
                log.warning("batch %s: this worker's lease ran out (it was frozen or cut off); the batch was queued "
                            "again. What it writes is kept; it will not mark the batch done if another worker holds it",
                            self.batch_id)
                return
