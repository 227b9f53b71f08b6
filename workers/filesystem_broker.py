"""The embedded mode's broker: kombu's filesystem transport, with messages written atomically.

kombu writes a message straight under its final name and only then locks and fills it. A
consumer polling the folder can move that file away in between, read it empty, and the
message is lost: the job stays queued forever (seen once in CI: a generation queued for 60 s
behind an idle worker). Here a message is written under a name no queue matches and renamed
into place when complete; a rename within one folder is atomic.

`register()` points the `filesystem://` URL scheme at this transport; both sides (the web
process that sends, the worker that receives) call it through workers/celery_app.py.
"""
from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

ALIAS = "filesystem"
PARTIAL_SUFFIX = ".partial"  # "<stamp>_<uuid>.<queue>.msg.partial" never matches "<queue>.msg"


class AtomicChannel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class AtomicTransport(filesystem.Transport):
    Channel = AtomicChannel


def register() -> None:
    TRANSPORT_ALIASES[ALIAS] = f"{__name__}:AtomicTransport"
