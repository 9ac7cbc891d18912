#!/usr/bin/python3
"""examples/we_miss_you.py: what a campaign tool receives from segstream.

Reads `segment-changes` (any Kafka client works; this one is Debian's
python3-kafka, run with /usr/bin/python3) and prints the customers who just
went quiet - the lifecycle changes to `at_risk` and `lapsed` that segstream
emits without any event from the customer, at the exact moment their
silence crossed the threshold - as a list a marketer can read and act on.

  /usr/bin/python3 examples/we_miss_you.py --brokers HOST:PORT [--topic T]
      [--group G] [--from-beginning] [--idle SECONDS] [--csv FILE]

With --group, offsets are committed, so each customer is listed once per
change even across restarts; a change seen twice (same event_id, as after a
crash of segstream) is listed once. --idle stops after that many quiet
seconds (default: run until Ctrl-C).

Each line is one change: a customer who goes at risk and later lapses is
listed twice, and the count at the end says how many distinct customers
that is. "why" is the change's own reason, so it follows the thresholds of
segstream's config (lifecycle.at_risk, lifecycle.lapsed). "value" is the
customer's recent spend as segstream weighs it: purchases decayed with the
purchase half-life (features.half_life.purchase), not a lifetime total.
"""
import argparse
import csv
import datetime
import json
import sys

STAGES = {"at_risk": "at risk", "lapsed": "lapsed"}


def when(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", default="segment-changes")
    p.add_argument("--group", default=None)
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--idle", type=float, default=0)
    p.add_argument("--csv", default=None, help="also write the list as CSV")
    a = p.parse_args()
    from kafka import KafkaConsumer
    c = KafkaConsumer(a.topic, bootstrap_servers=a.brokers, group_id=a.group,
                      auto_offset_reset="earliest" if a.from_beginning else "latest",
                      enable_auto_commit=a.group is not None,
                      consumer_timeout_ms=int(a.idle * 1000) if a.idle else float("inf"))
    out = csv.writer(open(a.csv, "w", newline="")) if a.csv else None
    if out:
        out.writerow(["when", "customer_id", "stage", "days_silent", "orders", "recent_value",
                      "reason", "event_id"])
    seen = set()
    customers = set()
    n = 0
    print("WE MISS YOU - customers who went quiet")
    print("%-17s %-14s %-8s %-30s %6s %8s" % ("when (event time)", "customer", "now", "why",
                                             "orders", "value"))
    try:
        for m in c:
            try:
                d = json.loads(m.value)
            except ValueError:
                continue  # msgpack change events: see kafka.change_format
            if d.get("dimension") != "lifecycle" or d.get("to") not in STAGES:
                continue
            if d["event_id"] in seen:
                continue
            seen.add(d["event_id"])
            f = d.get("features", {})
            why = d.get("reason") or ""
            print("%-17s %-14s %-8s %-30s %6d %8.2f" % (when(d["ts"]), d["customer_id"],
                                                       STAGES[d["to"]], why[:30],
                                                       f.get("orders", 0), f.get("monetary", 0.0)))
            if out:
                out.writerow([when(d["ts"]), d["customer_id"], d["to"],
                              round(f.get("recency_days", 0), 1), f.get("orders", 0),
                              round(f.get("monetary", 0.0), 2), why, d["event_id"]])
            n += 1
            customers.add(d["customer_id"])
    except KeyboardInterrupt:
        pass
    print("%d changes: %d customers to win back" % (n, len(customers)), file=sys.stderr)


if __name__ == "__main__":
    main()
