#!/usr/bin/python3
"""scripts/soak.py: a randomized crash soak of `segstream run` with Redis
state, against the reference replay of the same input.

It starts its own `segstream broker` and `redis-server` (free loopback
ports), generates a population (`segstream gen`), produces it to the
broker (all at once with `gen --out kafka:events`, or in chunks over the
soak with kcat, optionally with the producers' event_ids stripped so that
nothing downstream can hide a double application), and runs `segstream
run` through ROUNDS rounds, each ended by a SIGKILL (at a random moment,
during start-up, right after a checkpoint's WATCH, MULTI, EXEC or EVAL is
seen on Redis's MONITOR, during a rebalance with a second process of the
group, while Redis is paused with SIGSTOP, during the drain that a SIGTERM
starts) or a SIGTERM (--kinds picks among these). In --pair mode a second
process stays in the group and one of the two is killed each round, or
(--stall) SIGSTOPped for 1-15 s so that the group may give its partitions
away meanwhile. --gap-days moves the input's tail later, so that W jumps and
every customer's silent changes fall due at once. Then one process finishes
the input, and the script compares:

  * every customer's hash (lifecycle, rules, events, orders, revenue,
    first_seen, last_seen; the decoded `state` map but its cluster fields)
    with the reference replay written to Redis under `ref:`
    (`replay --state redis://... --prefix ref:`), and seg:sizes (but
    clusters) with ref:sizes;
  * after every round, with no process writing (or inside one MULTI in
    --pair mode), that each customer's `events` equals its records below
    the checkpointed offset of its partition (the exactly-once invariant at
    every checkpoint), and that no partition's offset went back;
  * the change topic: every lifecycle and rule change of the reference
    replay at least once with its event_id, a repeated event_id always with
    the same content (emitted_at aside), and each customer's latest
    lifecycle/cluster equal to Redis's.

Also: no dead letters, no sanitizer report in any log, SIGTERM exits 0,
the group's committed offsets at the end. Repeats that differ only in
model_version (the model a re-applied event met) are counted, not failed.
--tamper N moves a checkpointed offset back before the last run, to see the
checks fail. Example (about 8 minutes):

  scripts/soak.py --seed 11 --rounds 24 --strip-ids --pace 2 --chunks 150 \
      --workdir /tmp/soak-11

Exit 0 when everything held, 1 otherwise; a summary line `soak: ...` and a
report in WORKDIR/report.json. Every process it starts is stopped on exit.
"""
import argparse
import collections
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEG = os.environ.get("SEG_BIN", os.path.join(ROOT, "build", "cmd", "segstream"))
PEER = os.path.join(ROOT, "tests", "integration", "kafka_peer.py")
RULES = """rules:
  - name: british_isles
    all: ["country in [GB, IE]"]
  - name: cart_abandoners
    all: ["cart_abandonment > 0.5", "recency_days <= 14"]
  - name: loyal
    all: ["orders >= 5"]
  - name: big_spenders
    any: ["monetary > 200", "aov > 150"]
"""
# state map keys that depend on the model (cluster decisions may differ
# after a crash, by design: README "Change-event ids")
CLUSTER_KEYS = {"as", "cl", "te", "tv", "sqc", "ct"}

SNAP_LUA = """
local ev = {}
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
  ev[#ev + 1] = k
  ev[#ev + 1] = redis.call('HGET', k, 'events') or ''
end
return {redis.call('HGETALL', KEYS[1]), ev}
"""

PROCS = []  # every Popen started here


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for p in PROCS:
        try:
            p.wait(timeout=10)
        except Exception:
            pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------ redis

class Redis:
    """A minimal RESP client (no python3-redis on the machine)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            d = self.f.read(n + 2)
            return d[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)

    def cmd(self, *args):
        self.send(*args)
        return self.read()

    def pipe(self, cmds):
        for i in range(0, len(cmds), 1000):
            chunk = cmds[i:i + 1000]
            self.s.sendall(b"".join(self._enc(c) for c in chunk))
            for _ in chunk:
                yield self.read()

    @staticmethod
    def _enc(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def keys(self, pattern):
        cur, out = b"0", []
        while True:
            cur, ks = self.cmd("SCAN", cur, "MATCH", pattern, "COUNT", 2000)
            out += ks
            if cur == b"0":
                return out

    def close(self):
        self.s.close()


def hash_of(lst):
    return {lst[i].decode(): lst[i + 1] for i in range(0, len(lst), 2)}


# ---------------------------------------------------------------- msgpack

def mp_decode(b):
    import struct

    def rd(i):
        c = b[i]
        if c <= 0x7F:
            return c, i + 1
        if c >= 0xE0:
            return c - 256, i + 1
        if 0x80 <= c <= 0x8F:
            return rmap(c & 15, i + 1)
        if 0x90 <= c <= 0x9F:
            return rarr(c & 15, i + 1)
        if 0xA0 <= c <= 0xBF:
            n = c & 31
            return b[i + 1:i + 1 + n].decode("utf-8", "replace"), i + 1 + n
        if c == 0xC0:
            return None, i + 1
        if c == 0xC2:
            return False, i + 1
        if c == 0xC3:
            return True, i + 1
        if c in (0xC4, 0xC5, 0xC6):
            w = {0xC4: 1, 0xC5: 2, 0xC6: 4}[c]
            n = int.from_bytes(b[i + 1:i + 1 + w], "big")
            return bytes(b[i + 1 + w:i + 1 + w + n]), i + 1 + w + n
        if c == 0xCA:
            return struct.unpack(">f", b[i + 1:i + 5])[0], i + 5
        if c == 0xCB:
            return struct.unpack(">d", b[i + 1:i + 9])[0], i + 9
        if c in (0xCC, 0xCD, 0xCE, 0xCF):
            w = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[c]
            return int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w
        if c in (0xD0, 0xD1, 0xD2, 0xD3):
            w = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}[c]
            return int.from_bytes(b[i + 1:i + 1 + w], "big", signed=True), i + 1 + w
        if c in (0xD9, 0xDA, 0xDB):
            w = {0xD9: 1, 0xDA: 2, 0xDB: 4}[c]
            n = int.from_bytes(b[i + 1:i + 1 + w], "big")
            return b[i + 1 + w:i + 1 + w + n].decode("utf-8", "replace"), i + 1 + w + n
        if c in (0xDC, 0xDD):
            w = 2 if c == 0xDC else 4
            return rarr(int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w)
        if c in (0xDE, 0xDF):
            w = 2 if c == 0xDE else 4
            return rmap(int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w)
        raise ValueError("msgpack byte 0x%02x" % c)

    def rarr(n, i):
        out = []
        for _ in range(n):
            v, i = rd(i)
            out.append(v)
        return out, i

    def rmap(n, i):
        out = {}
        for _ in range(n):
            k, i = rd(i)
            v, i = rd(i)
            out[k if not isinstance(k, list) else tuple(k)] = v
        return out, i

    v, _ = rd(0)
    return v


# -------------------------------------------------------------- processes

class Soak:
    def __init__(self, a):
        self.a = a
        self.dir = a.workdir
        os.makedirs(self.dir, exist_ok=True)
        self.rng = random.Random(a.seed * 7919 + 13)
        self.report = {"seed": a.seed, "rounds": [], "problems": []}
        self.nlog = 0
        self.last_offsets = {}

    def path(self, n):
        return os.path.join(self.dir, n)

    def problem(self, what, **kw):
        kw["what"] = what
        self.report["problems"].append(kw)
        log("PROBLEM:", what, json.dumps(kw)[:600])

    def spawn(self, argv, out, err=None):
        fo = open(out, "ab")
        fe = open(err, "ab") if err else fo
        p = subprocess.Popen(argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        PROCS.append(p)
        return p

    def start_servers(self):
        self.rport = free_port()
        self.redis = self.spawn(["redis-server", "--port", str(self.rport), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no"], self.path("redis.log"))
        b = subprocess.Popen([SEG, "broker", "--partitions", str(self.a.partitions), "--topics",
                              "events,changes,segstream.dlq"], stdout=subprocess.PIPE,
                             stderr=open(self.path("broker.err"), "ab"), stdin=subprocess.DEVNULL)
        PROCS.append(b)
        line = b.stdout.readline().decode().strip()
        assert line.startswith("bootstrap="), line
        self.B = line.split("=", 1)[1]
        self.broker = b
        for _ in range(100):
            try:
                self.r = Redis(self.rport)
                self.r.cmd("PING")
                break
            except OSError:
                time.sleep(0.1)
        log("broker", self.B, "redis", self.rport)
        with open(self.path("run.yaml"), "w") as f:
            f.write("kafka:\n  brokers: \"%s\"\n  group_id: soak\n  changes_topic: changes\n"
                    "  properties:\n    session.timeout.ms: \"6000\"\n%s"
                    "redis:\n  url: \"redis://127.0.0.1:%d\"\n  prefix: \"seg:\"\n"
                    "watermark:\n  idle_timeout: 1s\n  idle_advance: false\n"
                    "http:\n  listen: \"127.0.0.1:0\"\n%s" %
                    (self.B, self.a.props, self.rport, RULES))

    # ---- input

    def make_input(self):
        a = self.a
        ev = self.path("ev.jsonl")
        subprocess.check_call([SEG, "gen", "--customers", str(a.customers), "--events",
                               str(a.events), "--seed", str(a.seed), "--out", ev])
        if a.strip_ids:
            with open(ev) as f, open(self.path("in.jsonl"), "w") as g:
                for line in f:
                    g.write(re.sub(r',"event_id":"[^"]*"', "", line))
        else:
            with open(ev) as f, open(self.path("in.jsonl"), "w") as g:
                g.write(f.read())
        self.lines = open(self.path("in.jsonl")).read().splitlines()
        if a.gap_days:
            # a quiet spell: every event after the first gap_at of the input
            # moves gap_days later, so W jumps and every customer's silent
            # changes fall due at once (the due index, in memory and Redis)
            for f in str(a.gap_at).split(","):
                at = int(len(self.lines) * float(f))
                shift = int(a.gap_days * 86400000)
                self.lines = self.lines[:at] + [
                    re.sub(r'"ts":(\d+)', lambda m: '"ts":%d' % (int(m.group(1)) + shift), l, count=1)
                    for l in self.lines[at:]]
            with open(self.path("in.jsonl"), "w") as g:
                g.write("\n".join(self.lines) + "\n")
        self.max_ts = max(json.loads(l)["ts"] for l in self.lines)
        log("input: %d events, max ts %d, event_ids %s" %
            (len(self.lines), self.max_ts, "stripped" if a.strip_ids else "kept"))

    def producer(self):
        a = self.a
        if a.produce == "gen":
            assert not a.strip_ids
            subprocess.check_call([SEG, "gen", "--customers", str(a.customers), "--events",
                                   str(a.events), "--seed", str(a.seed), "--out", "kafka:events",
                                   "--brokers", self.B], stdout=subprocess.DEVNULL)
            self.produced = len(self.lines)
            return None
        self.produced = 0

        def run():
            n = len(self.lines)
            chunk = max(500, n // a.chunks)
            i = 0
            while i < n:
                j = min(n, i + chunk)
                kf = self.path("chunk.keyed")
                with open(kf, "w") as f:
                    for l in self.lines[i:j]:
                        f.write(json.loads(l)["customer_id"] + "\t" + l + "\n")
                rc = subprocess.call(["kcat", "-P", "-X", "enable.idempotence=true", "-z", "lz4",
                                      "-b", self.B, "-t", "events", "-K", "\t", "-l", kf])
                if rc != 0:
                    self.problem("kcat failed", rc=rc, chunk=i)
                    return
                i = j
                self.produced = i
                time.sleep(a.pace)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    # ---- runs

    def start_run(self, tag):
        self.nlog += 1
        lp = self.path("run-%03d-%s.log" % (self.nlog, tag))
        p = self.spawn([SEG, "run", "-c", self.path("run.yaml")], lp)
        p.logpath = lp
        p.port = None
        p.t0 = time.time()
        return p

    def port(self, p, wait=20):
        end = time.time() + wait
        while p.port is None and time.time() < end:
            try:
                m = re.search(r"serving http://127\.0\.0\.1:(\d+)/metrics", open(p.logpath).read())
            except OSError:
                m = None
            if m:
                p.port = int(m.group(1))
            elif p.poll() is not None:
                return None
            else:
                time.sleep(0.05)
        return p.port

    def metrics(self, p):
        if not self.port(p, 0.01):
            return {}
        try:
            t = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % p.port, timeout=3).read()
        except Exception:
            return {}
        out = {}
        for line in t.decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def metric(self, p, name, default=-1):
        return self.metrics(p).get(name, default)

    def wait_metric(self, p, name, pred, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if p.poll() is not None:
                return None
            v = self.metric(p, name)
            if v is not None and v >= 0 and pred(v):
                return v
            time.sleep(0.1)
        return None

    def log_has(self, p, needle, since=0):
        try:
            return needle in open(p.logpath).read()[since:]
        except OSError:
            return False

    def log_len(self, p):
        try:
            return len(open(p.logpath).read())
        except OSError:
            return 0

    def kill(self, p, sig):
        if p.poll() is None:
            os.kill(p.pid, sig)
        try:
            rc = p.wait(timeout=90 if sig == signal.SIGTERM else 10)
        except subprocess.TimeoutExpired:
            self.problem("process did not exit", sig=int(sig), log=p.logpath)
            p.kill()
            rc = p.wait()
        return rc

    def wait_monitor(self, words, timeout):
        """Opens MONITOR; returns (word, seconds) when a command of words
        is seen, or None."""
        m = Redis(self.rport)
        m.send("MONITOR")
        m.read()
        m.s.settimeout(timeout)
        end = time.time() + timeout
        try:
            while time.time() < end:
                line = m.f.readline()
                if not line:
                    return None
                for w in words:
                    if (' "%s"' % w).encode() in line[:200]:
                        return w
            return None
        except (socket.timeout, OSError):
            return None
        finally:
            m.close()

    # ---- invariants between rounds

    def snapshot(self, name):
        """offsets and every customer's events, in one script (atomic: a
        SCAN before a MULTI would miss customers a checkpoint adds between
        the two while a process runs)."""
        rep = self.r.cmd("EVAL", SNAP_LUA, 1, "seg:offsets", "seg:c:*")
        offs = hash_of(rep[0])
        ev = {rep[1][i].decode()[6:]: int(rep[1][i + 1]) for i in range(0, len(rep[1]), 2)
              if rep[1][i + 1]}
        snap = {"name": name, "offsets": {k: int(v) for k, v in offs.items()
                                          if not k.endswith(":hi") and not k.endswith(":w")},
                "events": ev}
        with open(self.path("snap-%s.json" % name), "w") as f:
            json.dump(snap, f)
        for k, v in snap["offsets"].items():
            if v < self.last_offsets.get(k, 0):
                self.problem("checkpointed offset went back", partition=k,
                             was=self.last_offsets[k], now=v, at=name)
            self.last_offsets[k] = max(v, self.last_offsets.get(k, 0))
        return snap

    # ---- rounds

    def end_round(self, i, kind, info, t0):
        """Snapshots the checkpointed state after round i and records the round."""
        info["secs"] = round(time.time() - t0, 1)
        snap = self.snapshot("r%02d" % i)
        info["checkpointed"] = sum(snap["offsets"].values())
        self.report["rounds"].append(info)
        log("round %d %s: %s" % (i, kind, json.dumps({k: v for k, v in info.items() if k != "logs"})))

    def one_round(self, i, kind, procs):
        """procs: the running process(es) carried over (pair mode)."""
        a, rng = self.a, self.rng
        info = {"round": i, "kind": kind, "produced_at_start": self.produced}
        t0 = time.time()
        if kind == "startup":
            p = self.start_run("A")
            d = rng.choice([rng.uniform(0, 0.3), rng.uniform(0.3, 3.0)])
            mode = rng.choice(["time", "assigned"])
            if mode == "assigned":
                end = time.time() + 30
                while time.time() < end and not self.log_has(p, "assigned ") and p.poll() is None:
                    time.sleep(0.01)
                d = rng.uniform(0, 0.2)
            time.sleep(d)
            info.update(delay=round(d, 3), trigger=mode, applied=self.metric(p, 'segstream_events_in_total{topic="events"}'))
            info["rc"] = self.kill(p, signal.SIGKILL)
            info["logs"] = [p.logpath]
        elif kind in ("random", "sigterm", "checkpoint"):
            p = self.start_run("A")
            ok = self.wait_metric(p, "segstream_partitions_owned", lambda v: v >= a.partitions, 60)
            info["owned"] = ok
            if self.produced > sum(self.last_offsets.values()):
                self.wait_metric(p, 'segstream_events_in_total{topic="events"}', lambda v: v >= 1, 30)
            if kind == "checkpoint":
                time.sleep(rng.uniform(0, 2))
                w = self.wait_monitor(rng.choice([["MULTI"], ["EXEC"], ["WATCH"], ["EVALSHA", "EVAL"]]), 10)
                d = rng.choice([0, 0, rng.uniform(0, 0.01), rng.uniform(0, 0.05)])
                time.sleep(d)
                info.update(trigger=w, delay=round(d, 4))
            else:
                d = rng.uniform(0.1, a.max_delay)
                time.sleep(d)
                info["delay"] = round(d, 3)
            info["applied"] = self.metric(p, 'segstream_events_in_total{topic="events"}')
            info["checkpoints"] = self.metric(p, "segstream_checkpoints_total")
            sig = signal.SIGTERM if kind == "sigterm" else signal.SIGKILL
            info["rc"] = self.kill(p, sig)
            if kind == "sigterm" and info["rc"] != 0:
                self.problem("SIGTERM did not exit 0", rc=info["rc"], log=p.logpath)
            info["logs"] = [p.logpath]
        elif kind in ("termkill", "redispause"):
            p = self.start_run("A")
            self.wait_metric(p, "segstream_partitions_owned", lambda v: v >= a.partitions, 60)
            if self.produced > sum(self.last_offsets.values()):
                self.wait_metric(p, 'segstream_events_in_total{topic="events"}', lambda v: v >= 1, 30)
            d = rng.uniform(0.1, a.max_delay)
            time.sleep(d)
            info["delay"] = round(d, 3)
            if kind == "redispause":
                # Redis stops answering (a fork, a full disk, a stall) while
                # a checkpoint may be on its way; the run is killed during
                # the pause or right after it
                st = rng.uniform(0.5, 8)
                os.kill(self.redis.pid, signal.SIGSTOP)
                try:
                    cut = rng.uniform(0, st + 2)
                    info.update(pause_s=round(st, 2), kill_at=round(cut, 2))
                    if cut < st:
                        time.sleep(cut)
                        info["rc"] = self.kill(p, signal.SIGKILL)
                        time.sleep(st - cut)
                    else:
                        time.sleep(st)
                finally:
                    os.kill(self.redis.pid, signal.SIGCONT)
                if p.poll() is None:
                    time.sleep(max(0, info["kill_at"] - st))
                    info["rc"] = self.kill(p, signal.SIGKILL)
            else:
                # SIGTERM, then SIGKILL while it drains, writes its last
                # checkpoint or publishes its outbox
                os.kill(p.pid, signal.SIGTERM)
                g = rng.choice([0, rng.uniform(0, 0.05), rng.uniform(0, 0.5), rng.uniform(0, 2)])
                time.sleep(g)
                info["term_then_kill_s"] = round(g, 4)
                info["rc"] = self.kill(p, signal.SIGKILL)
            info["logs"] = [p.logpath]
        elif kind == "rebalance":
            p = self.start_run("A")
            self.wait_metric(p, "segstream_partitions_owned", lambda v: v >= a.partitions, 60)
            time.sleep(rng.uniform(0, 2))
            la = self.log_len(p)
            q = self.start_run("B")
            trig = rng.choice(["revoked", "assignedB", "time"])
            end = time.time() + 60
            while time.time() < end:
                if trig == "revoked" and self.log_has(p, "revoked", la):
                    break
                if trig == "assignedB" and self.log_has(q, "assigned ", 0):
                    break
                if trig == "time":
                    time.sleep(rng.uniform(0, 4))
                    break
                time.sleep(0.01)
            d = rng.choice([0, rng.uniform(0, 0.1), rng.uniform(0, 1)])
            time.sleep(d)
            victim = rng.choice(["A", "B"])
            v, s = (p, q) if victim == "A" else (q, p)
            info.update(trigger=trig, delay=round(d, 3), victim=victim)
            info["rc_victim"] = self.kill(v, signal.SIGKILL)
            # the survivor: often until it took the dead one's partitions over
            if rng.random() < 0.5:
                okk = self.wait_metric(s, "segstream_partitions_owned", lambda x: x >= a.partitions, 40)
                info["takeover"] = okk
                time.sleep(rng.uniform(0, 2))
            ssig = rng.choice([signal.SIGKILL, signal.SIGTERM])
            info["survivor_sig"] = int(ssig)
            info["rc_survivor"] = self.kill(s, ssig)
            if ssig == signal.SIGTERM and info["rc_survivor"] != 0:
                self.problem("SIGTERM did not exit 0", rc=info["rc_survivor"], log=s.logpath)
            info["logs"] = [p.logpath, q.logpath]
        elif kind == "pair":
            # procs = [A, B], both alive: kill one, start it again
            who = rng.choice([0, 1, 1])
            d = rng.uniform(0.2, a.max_delay)
            trig = rng.choice(["time", "time", "revoked"])
            if trig == "revoked":
                other = procs[1 - who]
                lo = self.log_len(other)
                end = time.time() + 30
                while time.time() < end and not self.log_has(other, "assigned ", lo):
                    time.sleep(0.01)
                d = rng.uniform(0, 0.3)
            time.sleep(d)
            v = procs[who]
            if a.stall and rng.random() < a.stall:
                # a stalled owner (GC pause, swapped out, a VM frozen): the
                # group may give its partitions away meanwhile; on SIGCONT it
                # must go on or stop (exit 1) without writing over the new owner
                st = rng.uniform(1, 15)
                os.kill(v.pid, signal.SIGSTOP)
                time.sleep(st)
                os.kill(v.pid, signal.SIGCONT)
                time.sleep(rng.uniform(0, 3))
                info.update(stalled="AB"[who], stall_s=round(st, 2), delay=round(d, 3), trigger=trig)
                if v.poll() is not None or rng.random() < 0.5:
                    info["rc_after_stall"] = v.poll() if v.poll() is not None else None
                    time.sleep(rng.uniform(0, 2))
                    if v.poll() is None:
                        self.kill(v, signal.SIGKILL)
                    info["rc"] = v.returncode
                    info["logs"] = [v.logpath]
                    procs[who] = self.start_run("AB"[who])
                self.end_round(i, kind, info, t0)
                return
            sig = signal.SIGTERM if rng.random() < 0.15 else signal.SIGKILL
            info.update(victim="AB"[who], delay=round(d, 3), trigger=trig, sig=int(sig))
            info["rc"] = self.kill(v, sig)
            if sig == signal.SIGTERM and info["rc"] != 0:
                self.problem("SIGTERM did not exit 0", rc=info["rc"], log=v.logpath)
            info["logs"] = [v.logpath]
            if procs[1 - who].poll() is not None:
                self.problem("the other process of the pair died", rc=procs[1 - who].returncode,
                             log=procs[1 - who].logpath)
                procs[1 - who] = self.start_run("AB"[1 - who])
            time.sleep(rng.choice([0, rng.uniform(0, 3)]))
            procs[who] = self.start_run("AB"[who])
        self.end_round(i, kind, info, t0)
        for lp in info.get("logs", []):
            t = open(lp).read()
            for l in t.splitlines():
                if " error " in l or "ERROR" in l:
                    log("   log error %s: %s" % (os.path.basename(lp), l))

    def finish(self, procs):
        for p in procs:
            if p.poll() is None and self.kill(p, signal.SIGTERM) != 0:
                self.problem("SIGTERM did not exit 0", rc=p.returncode, log=p.logpath)
        if self.prod:
            self.prod.join()
        p = self.start_run("F")
        total = len(self.lines)
        end = time.time() + 600
        got = -1
        while time.time() < end:
            offs = hash_of(self.r.cmd("HGETALL", "seg:offsets"))
            got = sum(int(v) for k, v in offs.items() if not k.endswith(":hi") and not k.endswith(":w"))
            if got == total:
                break
            if p.poll() is not None:
                self.problem("final run died", rc=p.returncode, log=p.logpath)
                p = self.start_run("F")
            time.sleep(0.3)
        if got != total:
            self.problem("checkpoints never held every record", got=got, total=total)
        w = self.wait_metric(p, "segstream_watermark_ms", lambda v: v >= self.max_ts, 60)
        if w != self.max_ts:
            self.problem("W never reached the newest event", w=w, max_ts=self.max_ts)
        self.wait_metric(p, "segstream_producer_queue", lambda v: v == 0, 60)
        # customers seen before the model was seeded get their cluster in sweeps
        v = self.r.cmd("GET", "seg:model:version")
        end = time.time() + (60 if v is not None and int(v) > 0 else 0)
        while time.time() < end:
            left = sum(self.r.cmd("SCARD", k) for k in self.r.keys("seg:unassigned:*"))
            if left == 0:
                break
            time.sleep(0.3)
        rc = self.kill(p, signal.SIGTERM)
        if rc != 0:
            self.problem("final SIGTERM did not exit 0", rc=rc, log=p.logpath)
        self.snapshot("final")

    # ---- comparisons

    def reference(self):
        out = self.path("ref.changes")
        subprocess.check_call([SEG, "replay", "-q", "-c", self.path("run.yaml"), "--input",
                               self.path("in.jsonl"), "--out", out, "--state",
                               "redis://127.0.0.1:%d" % self.rport, "--prefix", "ref:",
                               "--replace"])
        return out

    def compare_state(self):
        ck = self.r.keys("seg:c:*")
        rk = self.r.keys("ref:c:*")
        cs = {k.decode()[6:] for k in ck}
        rs = {k.decode()[6:] for k in rk}
        if cs != rs:
            self.problem("customer sets differ", only_run=sorted(cs - rs)[:10],
                         only_ref=sorted(rs - cs)[:10], n_only_run=len(cs - rs),
                         n_only_ref=len(rs - cs))
        ids = sorted(cs & rs)
        got = list(self.r.pipe([("HGETALL", "seg:c:" + c) for c in ids]))
        ref = list(self.r.pipe([("HGETALL", "ref:c:" + c) for c in ids]))
        fields = ["lifecycle", "rules", "events", "orders", "revenue", "first_seen", "last_seen"]
        bad = collections.Counter()
        bad_state = collections.Counter()
        examples = []
        unclustered = 0
        for c, g, r in zip(ids, got, ref):
            g, r = hash_of(g), hash_of(r)
            diff = [f for f in fields if g.get(f) != r.get(f)]
            if int(g.get("cluster", b"-1")) < 0 and int(r.get("cluster", b"-1")) >= 0:
                unclustered += 1
            gs, rs_ = mp_decode(g["state"]), mp_decode(r["state"])
            sdiff = sorted(k for k in set(gs) | set(rs_)
                           if k not in CLUSTER_KEYS and gs.get(k) != rs_.get(k))
            for f in diff:
                bad[f] += 1
            for f in sdiff:
                bad_state[f] += 1
            if (diff or sdiff) and len(examples) < 12:
                examples.append({"customer": c,
                                 "fields": {f: [g.get(f, b"").decode(), r.get(f, b"").decode()] for f in diff},
                                 "state": {k: [repr(gs.get(k))[:120], repr(rs_.get(k))[:120]] for k in sdiff}})
        n_bad = sum(1 for _ in examples)
        if bad or bad_state:
            self.problem("customer state differs from the reference replay",
                         fields=dict(bad), state_keys=dict(bad_state), examples=examples)
        if unclustered:
            self.problem("customers without a cluster that the reference clustered", n=unclustered)
        sz = hash_of(self.r.cmd("HGETALL", "seg:sizes"))
        rz = hash_of(self.r.cmd("HGETALL", "ref:sizes"))
        szd = {k: [sz.get(k, b"0").decode(), rz.get(k, b"0").decode()] for k in set(sz) | set(rz)
               if not k.startswith("cluster:") and sz.get(k, b"0") != rz.get(k, b"0")}
        ctot = sum(int(v) for k, v in sz.items() if k.startswith("cluster:"))
        if szd:
            self.problem("seg:sizes differ from the reference", sizes=szd)
        self.report["state"] = {"customers": len(cs), "reference": len(rs),
                                "differing_fields": dict(bad), "differing_state_keys": dict(bad_state),
                                "clustered_total": ctot, "sizes_differing": szd}
        log("state: %d customers (reference %d), differing fields %s, state keys %s, sizes %s" %
            (len(cs), len(rs), dict(bad), dict(bad_state), szd or "same"))
        return n_bad

    def check_snapshots(self):
        """events per customer at every snapshot == its records below the
        checkpointed offset of its partition."""
        dump = self.path("events.dump")
        subprocess.check_call(["/usr/bin/python3", PEER, "consume", "--brokers", self.B, "--topic",
                               "events", "--out", dump, "--expect", str(len(self.lines)), "--idle", "15"],
                              stdout=subprocess.DEVNULL)
        recs = collections.defaultdict(list)  # (topic:partition) -> [(offset, customer)]
        n = 0
        for line in open(dump):
            d = json.loads(line)
            recs["events:%d" % d["partition"]].append((d["offset"], d["key"]))
            n += 1
        if n != len(self.lines):
            self.problem("the events topic does not hold every record (broker retention?)",
                         have=n, want=len(self.lines))
        for v in recs.values():
            v.sort()
        first_off = {k: v[0][0] for k, v in recs.items()}
        bad_snaps = []
        for name in sorted(f[5:-5] for f in os.listdir(self.dir) if f.startswith("snap-")):
            snap = json.load(open(self.path("snap-%s.json" % name)))
            want = collections.Counter()
            for tp, off in snap["offsets"].items():
                for o, c in recs.get(tp, []):
                    if o >= off:
                        break
                    want[c] += 1
            got = snap["events"]
            diff = {c: (got.get(c, 0), want.get(c, 0)) for c in set(got) | set(want)
                    if got.get(c, 0) != want.get(c, 0)}
            if diff:
                ex = sorted(diff.items())[:8]
                bad_snaps.append(name)
                self.problem("events differ from the records below the checkpointed offsets",
                             snapshot=name, customers=len(diff),
                             more=sum(1 for g, w in diff.values() if g > w),
                             fewer=sum(1 for g, w in diff.values() if g < w),
                             examples=ex, offsets=snap["offsets"])
        self.report["snapshots_bad"] = bad_snaps
        log("snapshots: %d checked, %d bad %s" % (len(os.listdir(self.dir)), len(bad_snaps), bad_snaps[:5]))
        self.first_off = first_off

    def compare_changes(self, ref_path):
        dump = self.path("changes.dump")
        subprocess.check_call(["/usr/bin/python3", PEER, "consume", "--brokers", self.B, "--topic",
                               "changes", "--out", dump, "--idle", "10"], stdout=subprocess.DEVNULL)
        ref = {}
        for line in open(ref_path):
            d = json.loads(line)
            ref[d["event_id"]] = d
        seen = {}
        repeats = conflicting = 0
        conflicts = []
        conflicts_all = []
        n = 0
        order_bad = 0
        for line in open(dump):
            rec = json.loads(line)
            d = json.loads(rec["value"])
            n += 1
            if rec["key"] != d["customer_id"]:
                self.problem("change keyed by something else", key=rec["key"], id=d["event_id"])
            body = {k: v for k, v in d.items() if k != "emitted_at"}
            if d["event_id"] in seen:
                repeats += 1
                if seen[d["event_id"]] != body:
                    conflicting += 1
                    a_, b_ = seen[d["event_id"]], body
                    c_ = {k: [a_.get(k), b_.get(k)] for k in set(a_) | set(b_)
                          if a_.get(k) != b_.get(k)} | {"event_id": d["event_id"]}
                    conflicts_all.append(c_)
                    if len(conflicts) < 6:
                        conflicts.append(c_)
                continue
            seen[d["event_id"]] = body
        missing, differ, extra = [], [], []
        for eid, d in ref.items():
            if d["dimension"] == "cluster":
                continue
            g = seen.get(eid)
            if g is None:
                missing.append(eid)
                continue
            rb = {k: v for k, v in d.items() if k not in ("emitted_at", "model_version")}
            gb = {k: v for k, v in g.items() if k != "model_version"}
            if rb != gb:
                differ.append({"event_id": eid, "diff": {k: [gb.get(k), rb.get(k)]
                                                        for k in set(rb) | set(gb) if rb.get(k) != gb.get(k)}})
        for eid, g in seen.items():
            if g["dimension"] != "cluster" and eid not in ref:
                extra.append(eid)
        # latest per customer against Redis
        life, clus = {}, {}
        for line in open(dump):
            d = json.loads(json.loads(line)["value"])
            if d["dimension"] == "lifecycle":
                life[d["customer_id"]] = d["to"]
            elif d["dimension"] == "cluster":
                clus[d["customer_id"]] = d["to_id"]
        ids = [k.decode()[6:] for k in self.r.keys("seg:c:*")]
        hs = list(self.r.pipe([("HMGET", "seg:c:" + c, "lifecycle", "cluster") for c in ids]))
        lm = [c for c, h in zip(ids, hs) if life.get(c) != h[0].decode()]
        cm = [c for c, h in zip(ids, hs) if clus.get(c, -1) != int(h[1])]
        res = {"records": n, "distinct": len(seen), "repeats": repeats, "conflicting_ids": conflicting,
               "reference_lifecycle_rule": sum(1 for d in ref.values() if d["dimension"] != "cluster"),
               "missing": len(missing), "content_differs": len(differ), "extra": len(extra),
               "latest_lifecycle_mismatch": len(lm), "latest_cluster_mismatch": len(cm)}
        self.report["changes"] = res
        log("changes:", json.dumps(res))
        if missing:
            self.problem("reference changes missing from the change topic", n=len(missing),
                         examples=[ref[e] for e in missing[:5]])
        if differ:
            self.problem("change content differs from the reference", n=len(differ), examples=differ[:5])
        if extra:
            self.problem("lifecycle/rule changes not in the reference", n=len(extra),
                         examples=[seen[e] for e in extra[:5]])
        mv_only = sum(1 for c in conflicts_all if set(c) == {"model_version", "event_id"})
        res["conflicting_model_version_only"] = mv_only
        if conflicting - mv_only:
            self.problem("an event_id repeated with other content", n=conflicting - mv_only,
                         examples=[c for c in conflicts_all if set(c) != {"model_version", "event_id"}][:6])
        if mv_only:
            log("note: %d repeats differ only in model_version, e.g. %s" % (mv_only, conflicts[:2]))
        if lm or cm:
            self.problem("latest change per customer differs from Redis", lifecycle=lm[:5],
                         cluster=cm[:5], n_lifecycle=len(lm), n_cluster=len(cm))

    def dlq(self):
        subprocess.call(["/usr/bin/python3", PEER, "consume", "--brokers", self.B, "--topic",
                         "segstream.dlq", "--out", self.path("dlq.dump"), "--idle", "3"],
                        stdout=subprocess.DEVNULL)
        n = sum(1 for _ in open(self.path("dlq.dump")))
        if n:
            self.problem("dead letters", n=n)

    def run(self):
        a = self.a
        self.start_servers()
        self.make_input()
        self.prod = self.producer()
        kinds = a.kinds.split(",")
        procs = []
        if a.pair:
            procs = [self.start_run("A"), self.start_run("B")]
            for p in procs:
                self.wait_metric(p, 'segstream_partitions_owned', lambda v: v >= 1, 60)
        for i in range(a.rounds):
            kind = "pair" if a.pair else self.rng.choice(kinds)
            self.one_round(i, kind, procs)
        if a.tamper:
            # checks the checker: an offset moved back under the state, as a
            # checkpoint whose offsets lag its customers would leave it
            off = int(self.r.cmd("HGET", "seg:offsets", "events:0"))
            self.r.cmd("HSET", "seg:offsets", "events:0", max(0, off - a.tamper))
            log("tamper: events:0 offset %d -> %d" % (off, max(0, off - a.tamper)))
        self.finish(procs)
        c = subprocess.run(["/usr/bin/python3", PEER, "committed", "--brokers", self.B, "--group",
                            "soak", "--topic", "events"], capture_output=True, text=True).stdout.strip()
        self.report["committed"] = c
        log("group offsets:", c)
        if not c.startswith("behind=0 "):
            self.problem("the group's committed offsets lag after the final stop", committed=c)
        self.check_snapshots()
        ref = self.reference()
        self.compare_state()
        self.compare_changes(ref)
        self.dlq()
        for f in sorted(os.listdir(self.dir)):
            if f.startswith("run-") and f.endswith(".log"):
                t = open(self.path(f), errors="replace").read()
                if "Sanitizer" in t or "runtime error" in t:
                    i = max(t.find("Sanitizer"), t.find("runtime error"))
                    self.problem("sanitizer report", log=self.path(f), text=t[max(0, i - 200):i + 1500])
        with open(self.path("report.json"), "w") as f:
            json.dump(self.report, f, indent=1)
        log("soak: seed %d rounds %d customers %d events %d problems %d (report %s)" %
            (a.seed, a.rounds, a.customers, a.events, len(self.report["problems"]),
             self.path("report.json")))
        return 1 if self.report["problems"] else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--customers", type=int, default=10000)
    p.add_argument("--events", type=int, default=200000)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--produce", choices=["gen", "trickle"], default="trickle")
    p.add_argument("--chunks", type=int, default=100, help="trickle: chunks of the input")
    p.add_argument("--pace", type=float, default=1.0, help="trickle: seconds between chunks")
    p.add_argument("--strip-ids", action="store_true", help="drop the producers' event_ids")
    p.add_argument("--pair", action="store_true", help="two processes, one killed per round")
    p.add_argument("--kinds", default="startup,random,random,checkpoint,checkpoint,rebalance,sigterm")
    p.add_argument("--stall", type=float, default=0.0,
                   help="pair: chance that a round SIGSTOPs one process for 1-15 s instead")
    p.add_argument("--gap-days", type=float, default=0, help="shift the input's tail this many days")
    p.add_argument("--gap-at", default="0.5", help="where the tail starts (fraction)")
    p.add_argument("--tamper", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--max-delay", type=float, default=4.0)
    p.add_argument("--props", default="", help="extra kafka.properties lines (YAML, 4 spaces)")
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    def on_term(*_):
        cleanup()
        os._exit(3)
    signal.signal(signal.SIGTERM, on_term)
    try:
        rc = Soak(a).run()
    finally:
        cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    main()
