"""``Assistant()``: GALACTICA's tasks in an ipywidgets panel, wherever widgets render
(JupyterLab, Notebook 7, VS Code), talking to the same agent as the magics.

Type or paste text, press Cite, Equation, Summarise or Ask (or run a prompt of the library: a
paper, a molecule's IUPAC name, protein keywords...); the answer streams into the panel,
and "Insert below" hands it to the notebook through IPython's ``set_next_input``. Generation
runs in a background thread, so the kernel stays free and "Stop" cancels it on the agent.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from . import prompts
from .client import ClientError, CompletionsClient, run_task
from .discovery import AgentClient
from .magics_display import HALLUCINATION_NOTE, Citations, progress_line, status_text
from .notices import MAKES_THINGS_UP
from .prompts.display import TemplateResult

__all__ = ["Assistant"]

#: button label -> (task, tooltip)
TASK_BUTTONS: dict[str, tuple[str, str]] = {
    "Cite": ("cite", "Reference suggestions for the end of the text"),
    "Equation": ("equation", "LaTeX for the description"),
    "Summarise": ("summarise", "A TL;DR of the text"),
    "Ask": ("ask", "Answer the text as a question"),
}


class _Stopped(Exception):
    """The user pressed Stop."""


class Assistant(widgets.VBox):
    """A GALACTICA panel: a text area, task buttons, model status and streamed output.

    ``client``: a :class:`~galactica_ext.client.CompletionsClient`; by default the agent is
    found (or started, on the first task) like the magics do. ``shell``: the IPython shell that
    "Insert below" writes to (the current one by default). ``options`` go to every task
    (``max_tokens``, ``n``...); ``extra`` into every request's JSON.
    """

    def __init__(
        self,
        client: CompletionsClient | None = None,
        *,
        shell: Any = None,
        options: dict[str, dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        interval: float = 0.1,
    ) -> None:
        self.agent = AgentClient(client)
        self._shell = shell
        self._options = options or {}
        self._extra = extra
        self._interval = interval
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: the last task's result (:func:`galactica_ext.client.run_task`'s dict), or None
        self.result: dict[str, Any] | None = None
        #: the last task's text for "Insert below"
        self.insert_text: str = ""
        #: the last error's message, or None
        self.error: str | None = None

        self.text = widgets.Textarea(
            placeholder="Text to cite, an equation to write, a passage to summarise, a question",
            layout=widgets.Layout(width="100%", height="8em"),
        )
        self.buttons: dict[str, widgets.Button] = {}
        for label, (task, tip) in TASK_BUTTONS.items():
            button = widgets.Button(description=label, tooltip=tip)
            button.on_click(self._on_task(task))
            self.buttons[task] = button
        #: the prompt library: pick a template, its first field is the text area's text
        self.template = widgets.Dropdown(
            options=[(t.title, t.name) for t in prompts.templates()],
            description="Prompt",
            tooltip="A GALACTICA prompt from its authors' library (galai)",
        )
        self.template_button = widgets.Button(
            description="Run prompt", tooltip="Fill the chosen prompt with the text and run it"
        )
        self.template_button.on_click(lambda _b: self.run(self.template.value))
        self.stop_button = widgets.Button(
            description="Stop", tooltip="Cancel the generation", disabled=True
        )
        self.stop_button.on_click(lambda _b: self.stop())
        self.insert_button = widgets.Button(
            description="Insert below",
            tooltip="Put the answer in a new cell below",
            disabled=True,
        )
        self.insert_button.on_click(lambda _b: self.insert_below())
        self.refresh_button = widgets.Button(
            description="↻", tooltip="Refresh the model status", layout=widgets.Layout(width="3em")
        )
        self.refresh_button.on_click(lambda _b: self.refresh_status())
        self.status = widgets.HTML()
        self.output = widgets.HTMLMath(layout=widgets.Layout(width="100%"))
        super().__init__(
            [
                widgets.HBox([self.status, self.refresh_button]),
                self.text,
                widgets.HBox([*self.buttons.values(), self.stop_button]),
                widgets.HBox([self.template, self.template_button]),
                self.output,
                self.insert_button,
            ]
        )
        self.add_class("galactica-assistant")
        self.refresh_status()

    # -- the agent

    def client(self, start: bool = True) -> CompletionsClient:
        """The client of the current agent (found, or started, as the magics do)."""
        return self.agent.get(start=start)

    def refresh_status(self) -> str:
        """Show the agent's state (never starts an agent); returns the text shown."""
        try:
            client = self.client(start=False)
            text = status_text(client, client.health())
        except ClientError as err:
            text = str(err)
        self.status.value = f"<pre style='margin:0;white-space:pre-wrap'>{html.escape(text)}</pre>"
        return text

    # -- running tasks

    def _on_task(self, task: str) -> Callable[[Any], None]:
        return lambda _button: self.run(task)

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self, task: str, text: str | None = None, wait: bool = False) -> None:
        """Run ``task`` on ``text`` (the text area's by default) in the background."""
        if self.busy:
            return
        if text is not None:
            self.text.value = text
        self._stop.clear()
        self.result, self.error, self.insert_text = None, None, ""
        self._set_running(True)
        self._thread = threading.Thread(
            target=self._work, args=(task, self.text.value), name="galactica-assistant", daemon=True
        )
        self._thread.start()
        if wait:
            self.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running task; True when none runs any more."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.busy

    def stop(self) -> None:
        """Cancel the running task (its connection closes, so the agent stops generating)."""
        self._stop.set()

    def _set_running(self, running: bool) -> None:
        for button in [*self.buttons.values(), self.template_button]:
            button.disabled = running
        self.stop_button.disabled = not running
        self.insert_button.disabled = running or not self.insert_text

    def _work(self, task: str, text: str) -> None:
        last = 0.0

        def on_text(partial: str) -> None:
            nonlocal last
            if self._stop.is_set():
                raise _Stopped
            if time.monotonic() - last >= self._interval:
                last = time.monotonic()
                self._show_stream(partial)

        try:
            if not text.strip():
                raise ValueError("type or paste some text first")
            client = self.client(start=True)
            if client.health().get("status") != "ready":
                client.wait_ready(on_progress=lambda h: self._show_stream(progress_line(h)))
            self._show_stream("Looking for references…" if task == "cite" else "")
            result = run_task(
                client, task, text, on_text, extra=self._extra, **self._options.get(task, {})
            )
            if self._stop.is_set():
                raise _Stopped
            self.result = result
            self._show_result(task, result)
        except _Stopped:
            self.error = "stopped"
            self.output.value = "<i>Stopped: the generation was cancelled.</i>"
        except (ClientError, ValueError) as err:
            self.error = str(err)
            self.output.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
        finally:
            self._set_running(False)
            self.refresh_status()

    def _show_stream(self, text: str) -> None:
        self.output.value = f"<pre style='white-space:pre-wrap'>{html.escape(text)}▌</pre>"

    def _show_result(self, task: str, result: dict[str, Any]) -> None:
        note = (
            "<br><i>The text was cut to its end to fit GALACTICA's context.</i>"
            if result.get("truncated")
            else ""
        )
        if task == "cite":
            citations = Citations(result["suggestions"], result.get("model"))
            items = "".join(f"<li>{html.escape(s['text'])}</li>" for s in citations)
            self.output.value = (
                f"<ol>{items}</ol><i>{html.escape(HALLUCINATION_NOTE.capitalize())}.</i>{note}"
                if citations
                else "<i>No reference suggested.</i>"
            )
            self.insert_text = citations.markdown if citations else ""
        elif task in prompts.TEMPLATES:
            shown = TemplateResult(task, result)
            body = shown._repr_html_() or (
                f"<div style='white-space:pre-wrap'>{html.escape(shown.plain)}</div>"
                f"<i>{html.escape(MAKES_THINGS_UP)}</i>"
            )
            self.output.value = body + note
            self.insert_text = shown.plain
        elif task == "equation":
            latex = result["latex"]
            # HTMLMath typesets $$...$$; the source stays visible below it.
            self.output.value = (
                f"$${html.escape(latex)}$$<pre>{html.escape(latex)}</pre>{note}"
                if latex
                else "<i>No equation.</i>"
            )
            self.insert_text = f"$$\n{latex}\n$$" if latex else ""
        else:
            answer = result["text"]
            self.output.value = (
                f"<div style='white-space:pre-wrap'>{html.escape(answer)}</div>{note}"
                if answer
                else "<i>No answer.</i>"
            )
            self.insert_text = answer

    def insert_below(self) -> bool:
        """Put the last answer into a new cell below (IPython's ``set_next_input``).

        In a kernel, a frontend applies it with the reply of the next cell it runs.
        """
        if not self.insert_text:
            return False
        shell = self._shell
        if shell is None:
            from IPython import get_ipython

            shell = get_ipython()
        if shell is None:
            return False
        shell.set_next_input(self.insert_text, replace=False)
        return True
