"""Server configuration for the UI tests.

!! Never use this configuration in production: it opens the server to the world and
exposes JupyterLab's JavaScript objects through the global window variable.

The model is a scripted OpenAI-compatible server (``galactica_ext.server.tests.fake_openai``)
run inside this process and used as the remote backend, so that the UI tests check the
interface with predictable answers; the server tests (pytest) check the real agent. Set
``GALACTICA_UI_AGENT=1`` to drive the real local agent instead (with ``GALACTICA_MODEL``
pointing at a checkpoint).
"""

import os
import sys
from pathlib import Path

from jupyterlab.galata import configure_jupyter_server

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the package may not be installed in development
    sys.path.insert(0, str(ROOT))

configure_jupyter_server(c)  # noqa: F821
c.ServerApp.port = int(os.environ.get("GALATA_PORT", "8891"))  # noqa: F821
c.ServerApp.allow_root = True  # noqa: F821
c.ServerApp.jpserver_extensions = {"galactica_ext": True}  # noqa: F821

if os.environ.get("GALACTICA_UI_AGENT"):
    c.Galactica.start = "server"  # noqa: F821
    c.Galactica.reuse_agent = False  # noqa: F821
else:
    from galactica_ext.server.tests.fake_openai import FakeOpenAI

    _fake = FakeOpenAI(chunk_delay=0.03).start()
    c.Galactica.remote_url = _fake.url  # noqa: F821
