"""The dashboard listens on this machine only unless someone opens it deliberately."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_streamlit_run_from_the_repository_listens_on_loopback_only() -> None:
    # Given Streamlit started where `streamlit run dashboard/app.py` is documented to run (the repo root)
    code = (
        "from streamlit import config\n"
        "config.get_config_options(force_reparse=True)\n"
        "print(config.get_option('server.address'))\n"
    )
    # When it reads its configuration
    address = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    # Then the server binds to 127.0.0.1, not to every interface (Streamlit's default)
    assert address == "127.0.0.1"
