"""Run the Lytics sandbox and the SFTP sandbox until SIGTERM/SIGINT.

``python -m lytics_sandbox --lytics-port 8765 --sftp-port 2222 --sftp-root ./.demo/sftp
--audience high_value=5000`` prints one JSON line with the endpoints, then serves.

``python -m lytics_sandbox --demo include/jobs --demo-root .demo`` starts every stand-in the job
configs in that folder need instead (:mod:`lytics_sandbox.demo`) and prints one JSON line (also
written to ``<demo-root>/env.json`` once every stand-in is up): the ``AIRFLOW_CONN_*`` environment
(``env``), the stand-ins that could not start (``skipped``) and their URLs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType


def _audience(spec: str) -> tuple[str, int]:
    slug, sep, size = spec.partition("=")
    if not sep or not slug.strip() or not size.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected slug=size, got {spec!r}")
    return slug.strip(), int(size)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lytics-sandbox", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="bind address for both servers")
    p.add_argument("--lytics-port", type=int, default=8765)
    p.add_argument("--token", default="sandbox-token", help="API token the Lytics sandbox accepts")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--audience", action="append", type=_audience, default=[], metavar="SLUG=SIZE")
    p.add_argument("--invalid-email-rate", type=float, default=0.0)
    p.add_argument("--page-delay", type=float, default=0.0, help="seconds added to every scan page")
    p.add_argument("--no-sftp", action="store_true", help="do not start the SFTP server")
    p.add_argument("--sftp-port", type=int, default=2222)
    p.add_argument("--sftp-root", type=Path, default=Path(".demo/sftp"))
    p.add_argument("--sftp-user", default="lytics")
    p.add_argument("--sftp-password", default="sandbox-pass")
    p.add_argument("--sftp-host-key", type=Path, default=None, help="host key file (created if missing)")
    p.add_argument(
        "--demo", type=Path, default=None, metavar="JOBS_DIR", help="start every stand-in these jobs need"
    )
    p.add_argument(
        "--demo-root", type=Path, default=Path(".demo/stands"), help="files of the --demo stand-ins"
    )
    p.add_argument("--demo-audience-size", type=int, default=300, help="members of each audience in --demo")
    return p


def serve_demo(args: argparse.Namespace, stop: threading.Event) -> int:
    """Start every stand-in the jobs in ``args.demo`` need, print their environment, serve until stopped."""
    from lytics_sandbox.demo import DemoStands

    stands = DemoStands(args.demo_root.resolve(), args.demo.resolve(), audience_size=args.demo_audience_size)
    try:
        stands.start()
        described = json.dumps(stands.describe())
        ready = stands.root / "env.json"
        ready.with_suffix(".tmp").write_text(described)
        ready.with_suffix(".tmp").replace(ready)
        print(described, flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        stands.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.demo is not None:
        return serve_demo(args, stop)
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.synth import SyntheticAccount

    account = SyntheticAccount(
        seed=args.seed,
        audiences=dict(args.audience) or None,
        invalid_email_rate=args.invalid_email_rate,
    )
    lytics = LyticsSandbox(
        account, token=args.token, page_delay=args.page_delay, host=args.host, port=args.lytics_port
    )
    info: dict[str, object] = {
        "lytics_url": lytics.start(),
        "audiences": {s: a.size for s, a in account.audiences.items()},
    }
    sftp = None
    try:
        if not args.no_sftp:
            from lytics_sandbox.sftp import SFTPSandbox

            root = args.sftp_root.resolve()
            key = args.sftp_host_key or root.parent / f".{root.name}_host_key"
            sftp = SFTPSandbox(
                root,
                args.sftp_user,
                args.sftp_password,
                host=args.host,
                port=args.sftp_port,
                host_key_path=key,
            )
            host, port = sftp.start()
            info.update(sftp_host=host, sftp_port=port, sftp_root=str(root), sftp_user=args.sftp_user)
        print(json.dumps(info), flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        if sftp is not None:
            sftp.stop()
        lytics.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
