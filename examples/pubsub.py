#!/usr/bin/env python3
"""pubsub.py — wildcards, a queue-group service and a request, from Python (python/bus).
Needs a broker (`busd &`) and the module on the path: installed by the .deb, or
PYTHONPATH=python BUS_LIBRARY=build/libbus/libbus.so.0 from the source tree.
Usage: pubsub.py [BUS]"""
import sys

import bus


def main():
    with bus.connect(sys.argv[1] if len(sys.argv) > 1 else "default", name="pubsub.py") as nc:
        orders = nc.subscribe("orders.>")
        nc.subscribe("svc.upper", queue="upper", cb=lambda m: m.respond(m.data.upper()))
        for subject in ("orders.eu.new", "orders.us.paid"):
            nc.publish(subject, f"order on {subject}", headers={"Trace-Id": "42"})
        got = list(orders.messages(timeout=0.2))
        for m in got:
            print(f"{m.subject}: {m.data.decode()} (Trace-Id {m.headers['Trace-Id']})")
        print("svc.upper:", nc.request("svc.upper", b"hello", timeout=1).data.decode())
        try:
            nc.request("svc.nobody", b"?", timeout=1)
        except bus.NoRespondersError as e:
            print("svc.nobody:", e.status)
        return 0 if len(got) == 2 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except bus.Error as e:
        print(f"pubsub.py: {e}", file=sys.stderr)
        sys.exit(1)
