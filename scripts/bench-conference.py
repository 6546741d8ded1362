#!/usr/bin/env python3
"""Conference mixing load, one side at a time (see scripts/bench-conference, which runs both).

  bench-conference.py kentongan --sip 127.0.0.1:PORT --pid PID --rooms R --members M ...
  bench-conference.py janus --http http://127.0.0.1:PORT/janus --pid PID --rooms R ...

Joins R rooms of M members each (ours: real SIP calls to the room numbers 800.., digest
authenticated as extension 201; Janus: AudioBridge plain-RTP participants over its HTTP API),
then plays every member's phone for --seconds: PCMU, 20 ms frames, T talkers per room sending
a tone and the others silence (as G.711 phones without VAD do). Prints one JSON line: members,
the server's CPU seconds over the window, members per core, and the mixed packets members
received against what 50 packets/s per member would be.
"""
import argparse
import hashlib
import json
import math
import os
import random
import re
import selectors
import socket
import struct
import sys
import time
import urllib.request

FRAME = 0.020
HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def ulaw(sample):
    """ITU-T G.711 mu-law of a 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 0x84
    exponent = 7
    while exponent > 0 and not sample & (0x4000 >> (7 - exponent)):
        exponent -= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_frames(freq, frames):
    out = []
    for n in range(frames):
        out.append(bytes(ulaw(int(8000 * math.sin(2 * math.pi * freq * (n * 160 + i) / 8000)))
                         for i in range(160)))
    return out


class Member:
    def __init__(self, talker):
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp.setblocking(False)
        self.port = self.rtp.getsockname()[1]
        self.remote = None
        self.talker = talker
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.received = 0

    def send(self, payload):
        header = struct.pack("!BBHII", 0x80, 0, self.seq, self.ts, self.ssrc)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 160) & 0xFFFFFFFF
        try:
            self.rtp.sendto(header + payload, self.remote)
        except BlockingIOError:
            pass


# ---- kentongan-pbx: SIP calls into the rooms --------------------------------------------------

def sip_join(args, members):
    host, port = args.sip.rsplit(":", 1)
    server = (host, int(port))
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    sip.settimeout(5)
    local = sip.getsockname()[1]
    user, password, domain = "201", args.password, "pbx.local"

    def request(call_id, room, member, cseq, auth=""):
        sdp = (f"v=0\r\no=- {cseq} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {member.port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               f"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")
        return (f"INVITE sip:{room}@{domain} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{random.getrandbits(48):x};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag={call_id[:8]}\r\n"
                f"To: <sip:{room}@{domain}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n"
                f"Contact: <sip:{user}@127.0.0.1:{local}>\r\n{auth}"
                f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")

    def wait_final(call_id):
        while True:
            data = sip.recv(65535).decode(errors="replace")
            head, _, body = data.partition("\r\n\r\n")
            if f"Call-ID: {call_id}" not in head and f"i: {call_id}" not in head:
                continue
            code = int(head.split(" ", 2)[1])
            if code >= 200:
                return code, head, body

    for i, (room, member) in enumerate(members):
        call_id = f"bench{i}-{random.getrandbits(32):x}"
        sip.sendto(request(call_id, room, member, 1).encode(), server)
        code, head, body = wait_final(call_id)
        ack_to = head
        if code in (401, 407):
            sip.sendto(ack(head, room, domain, local, 1), server)
            challenge = re.search(r"(?im)^(WWW|Proxy)-Authenticate:\s*Digest\s+(.*)$", head)
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.group(2)))
            uri = f"sip:{room}@{domain}"
            ha1 = hashlib.md5(f"{user}:{params['realm']}:{password}".encode()).hexdigest()
            ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()
            cnonce = f"{random.getrandbits(32):x}"
            resp = hashlib.md5(f"{ha1}:{params['nonce']}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
            name = "Authorization" if code == 401 else "Proxy-Authorization"
            auth = (f'{name}: Digest username="{user}", realm="{params["realm"]}", '
                    f'nonce="{params["nonce"]}", uri="{uri}", response="{resp}", algorithm=MD5, '
                    f'qop=auth, nc=00000001, cnonce="{cnonce}"\r\n')
            sip.sendto(request(call_id, room, member, 2, auth).encode(), server)
            code, head, body = wait_final(call_id)
            ack_to = head
        if code != 200:
            sys.exit(f"error: joining room {room} answered {code}: {head.splitlines()[0]}")
        sip.sendto(ack(ack_to, room, domain, local, 2), server)
        rport = int(re.search(r"(?m)^m=audio (\d+)", body).group(1))
        rhost = re.search(r"(?m)^c=IN IP4 ([0-9.]+)", body).group(1)
        member.remote = (rhost, rport)
    return sip


def ack(head, room, domain, local, cseq):
    get = lambda name: re.search(rf"(?im)^{name}:\s*(.*)$", head).group(1).strip()
    return (f"ACK sip:{room}@{domain} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{random.getrandbits(48):x}\r\n"
            f"Max-Forwards: 70\r\nFrom: {get('From')}\r\nTo: {get('To')}\r\n"
            f"Call-ID: {get('Call-ID')}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n").encode()


# ---- Janus AudioBridge: plain-RTP participants -------------------------------------------------

def janus_join(args, members):
    def post(path, body):
        body["transaction"] = f"{random.getrandbits(48):x}"
        req = urllib.request.Request(args.http + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    session = post("", {"janus": "create"})["data"]["id"]
    admin = post(f"/{session}", {"janus": "attach", "plugin": "janus.plugin.audiobridge"})["data"]["id"]
    for room in sorted({room for room, _ in members}):
        answer = post(f"/{session}/{admin}", {"janus": "message", "body": {
            "request": "create", "room": int(room), "sampling_rate": 8000,
            "audiolevel_event": False, "allow_rtp_participants": True}})
        data = answer["plugindata"]["data"]
        if data.get("audiobridge") != "created":
            sys.exit(f"error: Janus did not create room {room}: {data}")
    pending = {}
    for room, member in members:
        handle = post(f"/{session}", {"janus": "attach", "plugin": "janus.plugin.audiobridge"})["data"]["id"]
        pending[handle] = member
        post(f"/{session}/{handle}", {"janus": "message", "body": {
            "request": "join", "room": int(room), "codec": "pcmu", "display": f"m{member.port}",
            "rtp": {"ip": "127.0.0.1", "port": member.port, "payload_type": 0}}})
    deadline = time.time() + 60
    while pending and time.time() < deadline:
        with urllib.request.urlopen(f"{args.http}/{session}?maxev=50", timeout=40) as r:
            events = json.load(r)
        for ev in events if isinstance(events, list) else [events]:
            data = ev.get("plugindata", {}).get("data", {})
            member = pending.get(ev.get("sender"))
            if member and "error" in data:
                sys.exit(f"error: Janus refused a participant: {data['error']}")
            if member and data.get("audiobridge") == "joined" and "rtp" in data:
                member.remote = (data["rtp"]["ip"], int(data["rtp"]["port"]))
                del pending[ev["sender"]]
    if pending:
        sys.exit(f"error: {len(pending)} Janus participants never got their RTP port")
    return session


def main():
    p = argparse.ArgumentParser()
    p.add_argument("server", choices=["kentongan", "janus"])
    p.add_argument("--sip")
    p.add_argument("--password", default="pw201")
    p.add_argument("--http")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--rooms", type=int, default=20)
    p.add_argument("--members", type=int, default=25)
    p.add_argument("--talkers", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10)
    args = p.parse_args()

    members = []
    for r in range(args.rooms):
        for m in range(args.members):
            members.append((str(800 + r), Member(talker=m < args.talkers)))
    joined_at = time.time()
    keep = sip_join(args, members) if args.server == "kentongan" else janus_join(args, members)
    join_seconds = time.time() - joined_at

    tones = tone_frames(1000, 50)
    silence = bytes([0xFF]) * 160
    sel = selectors.DefaultSelector()
    for _, m in members:
        sel.register(m.rtp, selectors.EVENT_READ, m)

    def play(seconds, count):
        start = time.monotonic()
        tick = 0
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                return
            if now >= start + tick * FRAME:
                for _, m in members:
                    m.send(tones[tick % len(tones)] if m.talker else silence)
                tick += 1
            timeout = max(0.0, start + tick * FRAME - time.monotonic())
            for key, _ in sel.select(timeout):
                while True:
                    try:
                        key.fileobj.recv(2048)
                    except BlockingIOError:
                        break
                    if count:
                        key.data.received += 1

    # Warm up (join prompts, latching), then measure.
    play(3, False)
    cpu0, t0 = cpu_seconds(args.pid), time.monotonic()
    play(args.seconds, True)
    cpu, wall = cpu_seconds(args.pid) - cpu0, time.monotonic() - t0
    expected = len(members) * wall / FRAME
    received = sum(m.received for _, m in members)
    print(json.dumps({
        "server": args.server, "members": len(members), "rooms": args.rooms,
        "join_seconds": round(join_seconds, 1), "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "members_per_core": round(len(members) * wall / cpu) if cpu > 0 else None,
        "received_share": round(received / expected, 4),
    }))
    del keep


if __name__ == "__main__":
    main()
