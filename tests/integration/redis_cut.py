#!/usr/bin/python3
"""tests/integration/redis_cut.py LISTEN_PORT REDIS_PORT LOG CUT_AT [HOLE]: a
TCP relay to a real redis-server that loses one reply. The CUT_AT-th EXEC it
passes on (0: none) is let run in Redis, then the client's connection is
closed before the reply reaches it: a checkpoint that landed while its
sender cannot know. Once the file HOLE exists, nothing passes any more in
either direction and connections stay open: a client cut off from Redis
whose writes never arrive late. Logs one line per EXEC passed on ("EXEC"),
and "CUT" when it cut."""
import os
import socket
import sys
import threading
import time

LISTEN, TARGET, LOG, CUT_AT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
HOLE = sys.argv[5] if len(sys.argv) > 5 else None


def hole():
    return HOLE is not None and os.path.exists(HOLE)
EXEC = b"*1\r\n$4\r\nEXEC\r\n"
lock = threading.Lock()
seen = [0]


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


def up(c, s, cut):
    """client -> server; counts EXECs (one may span two reads)"""
    tail = b""
    try:
        while True:
            data = c.recv(65536)
            if not data:
                break
            buf = tail + data
            n = buf.count(EXEC)
            tail = buf[-(len(EXEC) - 1):]
            last = False
            with lock:
                for _ in range(n):
                    seen[0] += 1
                    last = last or seen[0] == CUT_AT
            if hole():
                continue  # swallowed: never reaches Redis
            if last:
                cut.set()  # from here on, nothing goes back to the client
            s.sendall(data)
            for _ in range(n):
                note("EXEC")
            if last:
                time.sleep(1.0)  # Redis runs it
                note("CUT")
                close(c, s)
                return
    except OSError:
        pass
    close(c, s)


def down(c, s, cut):
    """server -> client, until the cut"""
    try:
        while True:
            data = s.recv(65536)
            if not data or cut.is_set():
                break
            if not hole():
                c.sendall(data)
    except OSError:
        pass
    if not cut.is_set():
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
        cut = threading.Event()
        threading.Thread(target=up, args=(c, s, cut), daemon=True).start()
        threading.Thread(target=down, args=(c, s, cut), daemon=True).start()


main()
