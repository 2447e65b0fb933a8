"""Sandbox only: inject incidents into the running sandbox and read the alerts it delivered."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import data, ui

st.title("Sandbox")
target = data.get_target()
if not target.is_sandbox:
    st.info("This page exists only when the dashboard shows a sandbox.")
    st.stop()
st.caption(f"{target.describe()} · API {target.api_url or '—'} · home `{target.home}`")


def inject() -> None:
    from sandbox.home import KINDS, IncidentFile, InjectionError

    incidents = IncidentFile(target.home)
    minutes = st.number_input("Minutes", min_value=1, max_value=240, value=15, step=5, key="inject_minutes")
    cols = st.columns(4)
    for i, (kind, spec) in enumerate(KINDS.items()):
        with cols[i % 4]:
            if st.button(kind, key=f"inject_{kind}", help=spec.description, width="stretch"):
                try:
                    injection = incidents.add(kind, minutes=float(minutes))
                except InjectionError as err:
                    st.error(str(err))
                else:
                    st.toast(f"Injected {kind} for {minutes} min ({injection.id})", icon=":material/bolt:")
    now = datetime.now(tz=UTC)
    injections = incidents.read()
    if injections:
        table = pd.DataFrame(
            [
                {
                    "id": inj.id,
                    "kind": inj.kind,
                    "state": "active" if inj.active(now) else ("pending" if now < inj.start else "ended"),
                    "start": inj.start,
                    "end": inj.end,
                    "intensity": inj.intensity,
                    "target": inj.target or "",
                }
                for inj in reversed(injections)
            ]
        )
        st.dataframe(table, hide_index=True, width="stretch")
        if st.button("End all active injections", key="inject_clear"):
            ended = incidents.clear()
            st.toast(f"Ended {len(ended)} injection(s)")
    else:
        st.caption("Nothing injected yet.")


def inbox() -> None:
    messages = data.inbox()
    st.metric("Alerts delivered", len(messages), border=True)
    if not messages:
        st.caption(f"No alert delivered to {target.inbox_file} yet.")
        return
    for message in messages[:50]:
        subject = message.get("Subject") or message.get("subject") or "(no subject)"
        stamp = message.get("Timestamp") or message.get("timestamp") or ""
        with st.expander(f"{stamp} · {subject}"):
            st.code(json.dumps(message, indent=2, default=str), language="json")


st.subheader("Inject an incident")
if target.is_local_sandbox:
    ui.section("Incident injection", inject)
else:
    st.warning(
        f"Injection refused: the emulator {target.endpoint_url} is not on this machine's loopback "
        "(127.0.0.1/localhost); faults are injected only into a local sandbox."
    )
st.subheader("Alert inbox")
ui.section("Alert inbox", inbox)
