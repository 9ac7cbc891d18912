#!/usr/bin/python3
"""tests/integration/redis_cut.py LISTEN_PORT REDIS_PORT LOG CUT_AT [HOLE [HOLD [PAUSE]]]:
a TCP relay to a real redis-server that loses, swallows or delays what a
client sends. It reads the client's commands (RESP) and passes on whole
commands only.

- CUT_AT: the CUT_AT-th EXEC it passes on (0: none) is let run in Redis,
  then the client's connection is closed before the reply reaches it: a
  checkpoint that landed while its sender cannot know. Logs one line per
  EXEC passed on ("EXEC"), and "CUT" when it cut.
- HOLE ("-": none): once this file exists, nothing passes any more in
  either direction and connections stay open: a client cut off from Redis
  whose writes never arrive late.
- HOLD: once this file exists, a client's bytes from its next MULTI on
  are kept here ("HOLDING", then "HELD TRANSACTION" once its EXEC is in),
  even after the client went away; when the file is removed they reach
  Redis, late: a transaction sent before its sender lost its partitions (or
  gave up on that connection) that lands after the new owner took over (or
  after the sender's later checkpoints). An ECHO follows them, its reply
  kept from the client, so that "RELEASED" is logged only once Redis has
  run them. One hold per run: other connections pass.
- PAUSE ("-" or absent: none): while this file exists, every client's
  commands are kept here, in order, and reach Redis once it is removed: a
  slow Redis, whose replies come late. Logs "KEPT NAME" the first time a
  command NAME is kept in each pause."""
import os
import select
import socket
import sys
import threading
import time

LISTEN, TARGET, LOG, CUT_AT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
HOLE = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None
HOLD = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] != "-" else None
PAUSE = sys.argv[7] if len(sys.argv) > 7 and sys.argv[7] != "-" else None
MARK = b"segstream-redis-cut-released"
ECHO = b"*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n" % (len(MARK), MARK)
MARK_REPLY = b"$%d\r\n%s\r\n" % (len(MARK), MARK)
lock = threading.Lock()
seen = [0]
held_once = [False]
kept_names = set()  # the commands logged as kept in the current pause


def paused():
    if PAUSE is not None and os.path.exists(PAUSE):
        return True
    with lock:
        kept_names.clear()
    return False


def hole():
    return HOLE is not None and os.path.exists(HOLE)


def note(line):
    with lock:
        with open(LOG, "a") as f:
            f.write(line + "\n")


def close(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def commands(buf):
    """(end, NAME) of each whole command at the start of buf"""
    at = 0
    while at < len(buf):
        nl = buf.find(b"\r\n", at)
        if nl < 0:
            return
        if buf[at:at + 1] != b"*":
            raise ValueError("not a RESP command at byte %d" % at)
        p, name = nl + 2, b""
        for i in range(int(buf[at + 1:nl])):
            nl = buf.find(b"\r\n", p)
            if nl < 0:
                return
            s = nl + 2
            e = s + int(buf[p + 1:nl])
            if e + 2 > len(buf):
                return
            if i == 0:
                name = bytes(buf[s:e]).upper()
            p = e + 2
        yield p, name
        at = p


class Conn:
    def __init__(self, c, s):
        self.c, self.s = c, s
        self.cut = threading.Event()  # nothing goes back to the client any more
        self.released = threading.Event()  # the held bytes go out, then ECHO
        self.marked = threading.Event()  # ECHO's reply came back: Redis ran them
        self.held = None  # bytes kept while holding
        self.kept = bytearray()  # whole commands kept while paused


def up(k):
    """client -> server, whole commands"""
    c, s = k.c, k.s
    buf = bytearray()
    gone = False  # the client closed while its bytes were held
    try:
        while True:
            if k.held is not None and not os.path.exists(HOLD):
                k.released.set()  # before the replies can come back
                # a whole command last, so that ECHO is a command of its own
                s.sendall(bytes(k.held) + ECHO)
                k.held = None
            if k.kept and not paused():
                s.sendall(bytes(k.kept))
                k.kept = bytearray()
            if gone:
                if k.held is None:
                    k.marked.wait(30)
                    break
                time.sleep(0.05)
                continue
            r, _, _ = select.select([c], [], [], 0.05)
            if not r:
                continue
            data = c.recv(65536)
            if not data:
                if k.held is None:
                    break
                gone = True  # what it sent still reaches Redis, late
                continue
            buf += data
            out, done, execs, last = bytearray(), 0, 0, False
            for end, name in commands(buf):
                cmd = buf[done:end]
                done = end
                if k.held is None and name == b"MULTI" and HOLD and os.path.exists(HOLD):
                    with lock:
                        first, held_once[0] = not held_once[0], True
                    if first:
                        k.held = bytearray()
                        note("HOLDING")
                if k.held is not None:
                    k.held += cmd
                    if name == b"EXEC":
                        note("HELD TRANSACTION")
                    continue
                if k.kept or paused():
                    k.kept += cmd
                    with lock:
                        first = name not in kept_names
                        kept_names.add(name)
                    if first:
                        note("KEPT %s" % name.decode())
                    continue
                out += cmd
                if name == b"EXEC":
                    execs += 1
                    with lock:
                        seen[0] += 1
                        last = last or seen[0] == CUT_AT
            del buf[:done]
            if hole() or not out:
                continue  # swallowed: never reaches Redis
            if last:
                k.cut.set()  # from here on, nothing goes back to the client
            s.sendall(out)
            for _ in range(execs):
                note("EXEC")
            if last:
                time.sleep(1.0)  # Redis runs it
                note("CUT")
                close(c, s)
                return
    except OSError:
        pass
    except ValueError as e:
        note("up: %s" % e)
    close(c, s)


def down(k):
    """server -> client, until the cut; the reply to ECHO is kept back"""
    c, s = k.c, k.s
    tail = b""
    try:
        while True:
            data = s.recv(65536)
            if not data or k.cut.is_set():
                break
            if k.released.is_set() and tail is not None:
                data = tail + data
                at = data.find(MARK_REPLY)
                if at < 0:  # keep what could be the start of the reply
                    tail = data[-(len(MARK_REPLY) - 1):]
                    data = data[:-(len(MARK_REPLY) - 1)]
                else:
                    data = data[:at] + data[at + len(MARK_REPLY):]
                    tail = None
                    note("RELEASED")
                    k.marked.set()
            if not hole():
                try:
                    c.sendall(data)
                except OSError:
                    if k.released.is_set() and tail is not None:
                        continue  # the client is gone; wait for the ECHO still
                    raise
    except OSError:
        pass
    if not k.cut.is_set():
        close(c, s)


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", LISTEN))
    ls.listen(16)
    note("READY")
    while True:
        c, _ = ls.accept()
        s = socket.create_connection(("127.0.0.1", TARGET))
        k = Conn(c, s)
        threading.Thread(target=up, args=(k,), daemon=True).start()
        threading.Thread(target=down, args=(k,), daemon=True).start()


main()
