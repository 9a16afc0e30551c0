#!/usr/bin/env python3
"""Snapshot stalls in coordnemesis --overload --timeline logs.

usage: scripts/overload-snapshots.py LOG...

For every raft snapshot the harness listed ("nN snapshot at index I, t=T"),
prints the node's role in the 2 s node window holding T (L leader, f
follower), the client's 500 ms windows from T-1 s to T+3 s (highest p99,
how many over 100 and 150 ms), the node's own highest Set mean and p99
(p99: a histogram bucket bound) and lowest appends/s in the 2 s windows
from T-2 to T+2 s, and its compaction's time in transactions + pauses
(coordd's par_compaction_*_seconds_total, the node table's "compact ms").
Then, per arm and role, the per-snapshot figures collected; the arm is
taken from the file name (-on, -off or -pN before ".log" or another dash).
Logs without an "exit" line (unfinished runs) are skipped.
"""
import re
import statistics
import sys


def dur(s):
    """Go time.Duration.String() → seconds."""
    m = re.fullmatch(r'(?:(\d+)m)?(?:([\d.]+)(ms|s|µs))?', s.strip())
    if not m:
        raise ValueError(s)
    t = 60 * int(m.group(1)) if m.group(1) else 0.0
    if m.group(2):
        v, u = float(m.group(2)), m.group(3)
        t += v / 1000 if u == 'ms' else (v / 1e6 if u == 'µs' else v)
    return t


def ms(s):
    return dur(s) * 1000


agg = {}
for f in sys.argv[1:]:
    lines = open(f).read().splitlines()
    snaps, cw, nw = [], [], []
    innodes, start, end, ex = False, '', '', ''
    for l in lines:
        if l.startswith('start '):
            start = l
        elif l.startswith('end '):
            end = l
        elif l.startswith('exit '):
            ex = l
        m = re.match(r'\s+(n\d) snapshot at index (\d+), t=(\S+) \((\w+)\)', l)
        if m:
            snaps.append((m.group(1), dur(m.group(3)), m.group(4)))
            continue
        if l.startswith('nodes per 2 s window'):
            innodes = True
            continue
        if not innodes:
            m = re.match(r'\s*(\S+)\s+(baseline|overload|after)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\S+)$', l)
            if m:
                cw.append((dur(m.group(1)), ms(m.group(8))))
            continue
        p = l.split()
        if len(p) == 21 and re.match(r'n\d\*?$', p[2]):
            nw.append(dict(t=dur(p[0]), node=p[2].rstrip('*'), lead=p[2].endswith('*'), app=float(p[5]),
                           setmean=ms(p[10]), setp99=ms(p[11]), comp=p[20]))
    if not ex or not cw:
        continue
    am = re.search(r'-(on|off|p[\d.]+)(?=[-.])', f.split('/')[-1])
    arm = am.group(1) if am else '?'
    vals = [p for t, p in cw if t >= 1.0]
    print(f"== {f.split('/')[-1]}  load {start.split('load average:')[-1].strip()} -> {end.split('load average:')[-1].strip()}  {ex}")
    print(f"   client 500 ms windows: {len(vals)}, median p99 {statistics.median(vals):.0f} ms, "
          f">100 ms {sum(v > 100 for v in vals)}, >150 ms {sum(v > 150 for v in vals)}, max {max(vals):.0f}")
    near = set()
    for node, t, ph in snaps:
        win = [(wt, p) for wt, p in cw if t - 1.0 <= wt <= t + 3.0]
        near.update(wt for wt, _ in win)
        w = [x for x in nw if x['node'] == node and x['t'] <= t < x['t'] + 2]
        role = ('L' if w[0]['lead'] else 'f') if w else '?'
        cws = [x for x in nw if x['node'] == node and t - 2 <= x['t'] <= t + 4 and x['comp'] != '-']
        busy = sum(float(x['comp'].split('+')[0]) for x in cws)
        paused = sum(float(x['comp'].split('+')[1]) for x in cws)
        ws = [x for x in nw if x['node'] == node and t - 2 <= x['t'] <= t + 2]
        sp = max((x['setp99'] for x in ws), default=0)
        sm = max((x['setmean'] for x in ws), default=0)
        ap = min((x['app'] for x in ws), default=0)
        mx = max((p for _, p in win), default=0)
        o1, o15 = sum(p > 100 for _, p in win), sum(p > 150 for _, p in win)
        agg.setdefault((arm, role), []).append((mx, o1, o15, sp, busy, paused))
        print(f"   {node} {role} t={t:6.1f} {ph:8s} client p99 max {mx:5.0f} ms, windows >100 ms {o1}/{len(win)}, >150 ms {o15}; "
              f"node Set mean/p99 max {sm:.0f}/{sp:.0f} ms, min app/s {ap:.0f}; compaction {busy:.0f}+{paused:.0f} ms")
    far = [p for t, p in cw if t >= 1.0 and t not in near]
    if far:
        print(f"   windows away from snapshots: {len(far)}, >100 ms {sum(v > 100 for v in far)}, >150 ms {sum(v > 150 for v in far)}, max {max(far):.0f}")

for (arm, role), v in sorted(agg.items()):
    print(f"{arm} {role}: {len(v)} snapshots; client p99 max each {sorted(round(x[0]) for x in v)}; "
          f"with a window >150 ms: {sum(x[2] > 0 for x in v)}; windows >100 ms: {sum(x[1] for x in v)}; "
          f"node Set p99 max {sorted(int(x[3]) for x in v)}; compaction busy {sorted(int(x[4]) for x in v)} paused {sorted(int(x[5]) for x in v)}")
