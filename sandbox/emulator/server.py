"""The AWS emulator: moto in server mode, in its own process, on 127.0.0.1.

`python -m sandbox.emulator.server --port 0` starts it and prints ``READY <port>`` once it accepts
requests. `Emulator` starts that process, learns the port from that line (so port 0 is race-free)
and stops it by PID. Everything else reaches it only through ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from types import TracebackType
from typing import IO, Any

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}

NO_CROSS_ORIGIN = {"MOTO_DISABLE_GLOBAL_CORS": "true"}
"""moto answers any web page's cross-origin requests unless this is set before it is imported: a page open in
the user's browser could otherwise read and change the sandbox through 127.0.0.1."""


class EmulatorError(RuntimeError):
    """The emulator process did not start or answer."""


def aws_environment(endpoint_url: str) -> dict[str, str]:
    """Environment that points every boto3 client at the emulator (and never at a real account)."""
    return LOCAL_CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint_url}


class Emulator:
    """A moto server subprocess. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 60.0,
        own_session: bool = False,
        sqs_metrics_interval_s: float | None = None,
    ) -> None:
        # own_session: run in a new session, so a terminal's Ctrl-C reaches only the owner, which
        # then stops the emulator after everything that still talks to it (used by the sandbox).
        self.own_session = own_session
        # sqs_metrics_interval_s: publish AWS/SQS queue metrics this often, as SQS does (the sandbox);
        # None keeps the metric store to what clients put (tests that assert on exact series).
        self.sqs_metrics_interval_s = sqs_metrics_interval_s
        self.host = host
        self.requested_port = port
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self._process: subprocess.Popen[str] | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise EmulatorError("emulator not started")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> Emulator:
        cmd = [
            sys.executable,
            "-m",
            "sandbox.emulator.server",
            "--host",
            self.host,
            "--port",
            str(self.requested_port),
        ]
        if self.sqs_metrics_interval_s:
            cmd += ["--sqs-metrics-interval", str(self.sqs_metrics_interval_s)]
        env = os.environ | LOCAL_CREDENTIALS | NO_CROSS_ORIGIN
        self._process = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=self.own_session,
        )
        self.port = _read_ready_port(self._process, self.startup_timeout_s)
        # Drain its output so a chatty emulator can never block on a full pipe.
        for stream in (self._process.stdout, self._process.stderr):
            threading.Thread(target=_drain, args=(stream,), daemon=True).start()
        return self

    def reset(self) -> None:
        """Drop every resource (moto's reset API)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass

    def stop(self) -> None:
        proc, self._process = self._process, None
        stop_process(proc)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen[Any] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM a child we started, wait for it, and SIGKILL it if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def _drain(stream: IO[str] | None) -> None:
    if stream is None:
        return
    for _ in stream:
        pass


def _read_ready_port(proc: subprocess.Popen[str], timeout_s: float) -> int:
    assert proc.stdout is not None
    result: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("READY "):
                result.append(line)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not result:
        proc.kill()
        stderr = proc.stderr.read() if proc.stderr else ""
        raise EmulatorError(f"AWS emulator did not start within {timeout_s:.0f}s: {stderr[-2000:]}")
    return int(result[0].split()[1])


def install_extensions() -> None:
    """Apply the sandbox's fixes to moto in this (the emulator's) process, before it serves requests.

    - the indexed CloudWatch metric store (fast GetMetricData with percentiles);
    - SQS without per-message clock reads, so a backlog of thousands of messages stays cheap;
    - DynamoDB data operations serialized, as DynamoDB serializes writes to an item.
    """
    from sandbox.emulator import extensions
    from sandbox.emulator.moto_fixes import serialize_dynamodb
    from sandbox.emulator.sqs_fixes import install_moto_sqs_fixes

    extensions.install()
    install_moto_sqs_fixes()
    serialize_dynamodb()


def serve(host: str, port: int, *, sqs_metrics_interval_s: float | None = None) -> None:
    os.environ.update(NO_CROSS_ORIGIN)  # before moto is imported (moto.settings reads it once)
    from moto.server import ThreadedMotoServer

    from sandbox.emulator.service_metrics import install_hooks
    from sandbox.emulator.sqs_metrics import SqsMetricsPublisher

    install_extensions()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    _host, bound_port = server.get_host_and_port()
    publisher = None
    if sqs_metrics_interval_s:
        install_hooks()  # count SQS, DynamoDB and EventBridge activity for the publisher
        endpoint = f"http://{host}:{bound_port}"
        publisher = SqsMetricsPublisher(endpoint, interval_s=sqs_metrics_interval_s).start()
    print(f"READY {bound_port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    parent = os.getppid()
    while not stop.is_set():
        stop.wait(0.5)
        if os.getppid() != parent:  # the owner died without stopping us (e.g. SIGKILL): stop too
            stop.set()
    if publisher is not None:
        publisher.stop()
    server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.emulator.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default: FLEETSCOPE_EMULATOR_PORT (5055); 0 = a free port")
    parser.add_argument(
        "--sqs-metrics-interval",
        type=float,
        default=None,
        help="publish AWS/SQS, AWS/DynamoDB and AWS/Events metrics every N seconds, as AWS does "
        "(off by default)",
    )
    args = parser.parse_args(argv)
    if args.port is None:
        from sandbox.home.settings import SettingsError, read_settings

        try:
            args.port = read_settings().emulator_port
        except SettingsError as err:
            parser.error(str(err))
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the emulator listens on loopback only")
    if args.sqs_metrics_interval is not None and args.sqs_metrics_interval <= 0:
        parser.error("--sqs-metrics-interval must be positive")
    serve(args.host, args.port, sqs_metrics_interval_s=args.sqs_metrics_interval)


def wait_until_ready(endpoint_url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise EmulatorError(f"no AWS emulator answering at {endpoint_url}")


if __name__ == "__main__":
    main()
