"""`make run`: the whole stack on this machine, until Ctrl-C or SIGTERM.

    python -m infra.local                 start (API on 127.0.0.1:8000)
    python -m infra.local token [--sub S] [--email E | --no-email] [--admin] [--groups G,…]
                                          print a token from the same local issuer key: user S
                                          (default dev-admin) with e-mail S@example.com and no
                                          groups unless told (--admin: the admin group)
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEY_FILE = ROOT / ".local" / "issuer-key.pem"


def _ml_status() -> str:
    """Whether pipelines may post analyses (docs/analyses.md), as the API's settings say."""
    from chalicelib.services.container import services

    settings = services().settings
    if not settings.ml_analysis_enabled:
        return "off (ML_ANALYSIS_ENABLED=true turns them on)"
    return f"on, models: {settings.ml_allowed_models or '(none allowed: set ML_ALLOWED_MODELS)'}"


def _serve(args: argparse.Namespace) -> int:
    from chalice.local import create_local_server

    # Metrics go to CloudWatch as EMF on AWS; on a laptop they would only flood the terminal.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

    from infra.local.stack import LocalStack

    stack = LocalStack(port=args.emulator_port, key_file=KEY_FILE).start()
    stack.start_pump()
    server = create_local_server(stack.app, stack.chalice_config(), args.host, args.port)
    serving = threading.Thread(target=server.serve_forever, name="api", daemon=True)
    serving.start()
    api = f"http://{args.host}:{args.port}"
    buckets = {lid: res["Ref"] for lid, res in stack.physical.items() if lid.endswith("Bucket")}
    print(
        "\npixelpool is running\n"
        f"  API                {api}   (OpenAPI: {api}/api/v1/openapi.json)\n"
        f"  AWS endpoint       {stack.endpoint}   (region {stack.region}, any access key)\n"
        + "".join(f"  {lid:<18} {name}\n" for lid, name in sorted(buckets.items()))
        + f"  ingest queue       {stack.physical['IngestQueue']['QueueName']}\n"
        f"  ML analyses        {_ml_status()}\n"
        f"  admin token        {stack.token()}\n\n"
        f"  curl -H \"Authorization: Bearer $TOKEN\" {api}/api/v1/tags\n"
        f"  aws --endpoint-url {stack.endpoint} s3 cp photo.jpg s3://{buckets.get('ShareBucket')}/photos/\n"
        "Ctrl-C stops.\n",
        flush=True,
    )
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    print("stopping…", flush=True)
    server.server.shutdown()
    stack.stop()
    return 0


def _token(args: argparse.Namespace) -> int:
    from infra.local.issuer import LocalIssuer, default_email

    groups = [g for g in args.groups.split(",") if g]
    if args.admin and "admin" not in groups:
        groups.append("admin")
    email = None if args.no_email else args.email or default_email(args.sub)
    print(LocalIssuer(key_file=KEY_FILE).token(args.sub, email=email, groups=groups))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("PIXELPOOL_API_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PIXELPOOL_API_PORT", "8000")))
    parser.add_argument("--emulator-port", type=int, default=int(os.environ.get("PIXELPOOL_EMULATOR_PORT", "4599")))
    commands = parser.add_subparsers(dest="command")
    token = commands.add_parser("token", help="print a bearer token for the running stack")
    token.add_argument("--sub", default="dev-admin")
    email = token.add_mutually_exclusive_group()
    email.add_argument("--email", help="the token's (verified) e-mail; default <sub>@example.com")
    email.add_argument("--no-email", action="store_true", help="a token without an e-mail")
    token.add_argument("--admin", action="store_true", help="in the admin group (a system administrator)")
    token.add_argument("--groups", default="", help="comma-separated groups; none by default")
    args = parser.parse_args(argv)
    return _token(args) if args.command == "token" else _serve(args)


if __name__ == "__main__":
    sys.exit(main())
