"""Drive JupyterLab in headless Chromium: start a server, open a notebook, run it, read the page.

Used by ``tests/test_browser.py``. JupyterLab runs on 127.0.0.1 with a random token and
``expose_app_in_browser`` (so the page's ``window.jupyterapp`` runs commands and reads the notebook model),
and with windowing off, so every cell is in the DOM. Chromium is Debian's package (``/usr/bin/chromium``)
driven by the ``playwright`` Python package: no browser download.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from fgic.lab import SETTINGS_DIR

CHROMIUM_FLAGS = [  # a closed network: no background traffic, no first-run dialogs
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USER_SETTINGS = {  # test-only user settings: render every cell (windowing would hide off-screen ones)
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def chromium_path() -> str | None:
    """Debian's Chromium (or ``$FGIC_CHROMIUM``), or None."""
    for p in (os.environ.get("FGIC_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if p and Path(p).is_file():
            return p
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server over ``root`` (a folder of notebooks), for the duration of a ``with`` block."""

    def __init__(self, root: Path, settings_dir: Path, env: dict[str, str], log: Path):
        self.root, self.settings_dir, self.env, self.log = root, settings_dir, env, log
        self.port, self.token = _free_port(), secrets.token_hex(16)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Lab:
        for name, value in USER_SETTINGS.items():
            plugin, file = name.split("/", 1)[0], name
            path = self.settings_dir / plugin / file.split("/", 1)[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        cmd = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={self.settings_dir}",
            f"--LabApp.app_settings_dir={SETTINGS_DIR}",  # the workspace's defaults, as `python -m fgic lab`
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI runs as root
        self._log = self.log.open("w")
        self.proc = subprocess.Popen(cmd, env={**os.environ, **self.env}, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"JupyterLab did not start; its log: {self.log}\n{self.log.read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()

    def open_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"


# JavaScript run in the page: the notebook panel, its model, its commands.
JS_PANEL = "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
JS_READY = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
            && w.sessionContext.session.kernel.status === 'idle' && w.content && w.content.widgets.length);
}"""
JS_RUN_ALL = "() => window.jupyterapp.commands.execute('notebook:run-all-cells')"
JS_SAVE = "() => window.jupyterapp.commands.execute('docmanager:save')"
JS_SAVED = "() => !window.jupyterapp.shell.currentWidget.context.model.dirty"
JS_SHUTDOWN = "() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()"
JS_CLOSE_ALL = "() => window.jupyterapp.commands.execute('application:close-all')"
JS_DONE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const busy = w.sessionContext.session.kernel.status !== 'idle';
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const pending = cells.filter(c => c.model.executionCount === null || c.promptNode.textContent.includes('*'));
  return !busy && pending.length === 0;
}"""
JS_ERRORS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const out = [];
  w.content.widgets.forEach((c, i) => {
    if (c.model.type !== 'code') return;
    const outs = c.model.sharedModel.outputs || [];
    outs.forEach(o => { if (o.output_type === 'error') out.push(`cell ${i}: ${o.ename}: ${o.evalue}`); });
  });
  return out;
}"""
JS_PNG_COUNT = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  let n = 0;
  w.content.widgets.forEach(c => {
    if (c.model.type !== 'code') return;
    (c.model.sharedModel.outputs || []).forEach(o => { if (o.data && o.data['image/png']) n += 1; });
  });
  return n;
}"""
JS_RENDERED_IMAGES = """() => Array.from(
  document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img'))
  .filter(img => img.complete && img.naturalWidth > 0).length"""
JS_MATH = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const w = window.jupyterapp.shell.currentWidget;
  const sources = w.content.widgets.filter(c => c.model.type === 'markdown').map(c => c.model.sharedModel.source);
  const prose = sources.map(s => s.replace(/```[\\s\\S]*?```/g, '').replace(/`[^`]*`/g, ''));  // code is not math
  const wanted = prose.filter(s => /\\$[^$]+\\$/.test(s)).length;
  return {cells_with_math: wanted, rendered: panel.querySelectorAll('mjx-container').length};
}"""
JS_MERMAID = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const w = window.jupyterapp.shell.currentWidget;
  const sources = w.content.widgets.filter(c => c.model.type === 'markdown').map(c => c.model.sharedModel.source);
  const wanted = sources.map(s => (s.match(/```mermaid/g) || []).length).reduce((a, b) => a + b, 0);
  return {diagrams: wanted, rendered: panel.querySelectorAll('.jp-RenderedMermaid svg').length};
}"""
JS_TEXT = "() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)').innerText"
