"""Server configuration for the UI tests.

!! Never use this configuration in production: it opens the server to the world and
exposes JupyterLab's JavaScript objects through the global window variable.

The model is the real agent, started with the server and supervised by the extension, on
a random-weight ``tiny`` GALACTICA checkpoint with the real tokenizer
(``$GALACTICA_TOKENIZER_DIR``, default ``../shared/fixtures/galactica-tokenizer``), built
here into a cache directory (``$GALACTICA_UI_CHECKPOINT``, default under the system's
temporary directory; rebuilt only when missing). Its text is meaningless, so the tests check
what the interface does with it, not what it says. The agent's runtime file is private to
this server, so a user's running agent is never reused (nor disturbed).

Set ``GALACTICA_UI_MODEL`` to serve another model instead (a size, hub id or directory, e.g.
the galactica-125m shape built by ``build_random_checkpoint(dir, "125m")``): the latency test
(tests/latency.spec.ts) runs only then.
"""

import getpass
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from jupyterlab.galata import configure_jupyter_server

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the package may not be installed in development
    sys.path.insert(0, str(ROOT))
# ... and the processes started from here (checkpoint builder, agent) find it too
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
)

configure_jupyter_server(c)  # noqa: F821
c.ServerApp.port = int(os.environ.get("GALATA_PORT", "8891"))  # noqa: F821
c.ServerApp.allow_root = True  # noqa: F821
c.ServerApp.jpserver_extensions = {"galactica_ext": True}  # noqa: F821


def tiny_checkpoint() -> str:
    """Build (or reuse) the tiny random-weight checkpoint, in a child process: the server
    process itself never imports torch."""
    default = Path(tempfile.gettempdir()) / f"galactica-ext-ui-{getpass.getuser()}"
    out = Path(os.environ.get("GALACTICA_UI_CHECKPOINT") or default / "galactica-tiny-random")
    code = (
        "import sys; from galactica_ext.checkpoints import build_random_checkpoint; "
        "build_random_checkpoint(sys.argv[1], 'tiny')"
    )
    subprocess.run([sys.executable, "-c", code, str(out)], check=True)
    return str(out)


# the agent: started with the server, float32 on the CPU, offline, found only by this server
os.environ["GALACTICA_RUNTIME_FILE"] = str(
    Path(tempfile.mkdtemp(prefix="galactica-ui-runtime-")) / "galactica-agent.json"
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
c.Galactica.model = os.environ.get("GALACTICA_UI_MODEL") or tiny_checkpoint()  # noqa: F821
c.Galactica.dtype = "float32"  # noqa: F821
c.Galactica.device = "cpu"  # noqa: F821
c.Galactica.start = "server"  # noqa: F821
c.Galactica.reuse_agent = False  # noqa: F821
c.Galactica.remote_url = ""  # noqa: F821
