#!/usr/bin/env python3
"""Prints the long patterns of ../podwarden/values.schema.json as JSON: the
thresholds (minAvailable, criticalAvailable, releaseAvailable) and the
durations (interval, cooldown, growthWindow, grace, pressure). Paste a
changed one into the schema; go test ./deploy/helm -run TestSchemaPolicy
holds the schema to the agent (policy.Parse), this script is only a help.

Each pattern accepts a subset of what the agent accepts for the key, the
whole of it for the spellings people write: where a range cannot be said
exactly in a regular expression it is said more strictly (see the
"stricter" comments).
"""
import json
import re
from fractions import Fraction as F

# --- thresholds -------------------------------------------------------------
SEP = r"[ ,\t]"
ZERO = r"(0+(\.0*)?|0*\.0+)"
# A size: at least 0.01 of its unit (stricter: ParseSize takes 0.001Ki, one
# byte) and below 10^n units, n chosen so the largest stays under ParseSize's
# 2^62 bytes (stricter: 4000000TiB is refused here, taken there). Signs,
# exponents and spaces inside a part (+5%, 1e1%, "10 %") are refused too.
def nz(n):
    return r"0*([1-9][0-9]{0,%d}(\.[0-9]*)?|\.0?[1-9][0-9]*)" % (n-1)
SIZE = "(%sTi?|%sGi?|%sMi?|%sKi?)B?" % (nz(6), nz(9), nz(12), nz(15))
def pct(body): return "(%s)%%?" % body
R1_50 = r"0*([1-9]|[1-4][0-9])(\.[0-9]*)?|0*50(\.0*)?"
R0_50 = r"0*\.[0-9]+|0+(\.[0-9]*)?|" + R1_50
R1_90 = r"0*([1-9]|[1-8][0-9])(\.[0-9]*)?|0*90(\.0*)?"
# A level: a percentage in range, a size, or both in either order; a 0%
# only beside a size (alone it is no threshold), except for
# criticalAvailable, where 0 turns it off.
def level(rng):
    pr, pz = pct(rng), pct(ZERO + "|" + rng)
    return "^%s*(%s|%s|%s%s+%s|%s%s+%s)%s*$" % (SEP, pr, SIZE, pz, SEP, SIZE, SIZE, SEP, pz, SEP)

# --- durations --------------------------------------------------------------
def int_range(lo, hi):
    """regex (no anchors) for integers lo..hi written without leading zeros"""
    assert 0 <= lo <= hi
    out = []
    def same_len(a, b):  # strings, same length
        if a == b: return re.escape(a)
        if len(a) == 1: return "[%s-%s]" % (a, b) if a != b else a
        if a[0] == b[0]: return a[0] + "(" + same_len(a[1:], b[1:]) + ")"
        parts = []
        n = len(a) - 1
        if a[1:] == "0"*n: lo0 = int(a[0])
        else:
            parts.append(a[0] + "(" + same_len(a[1:], "9"*n) + ")"); lo0 = int(a[0]) + 1
        if b[1:] == "9"*n: hi0 = int(b[0])
        else:
            hi0 = int(b[0]) - 1
        if lo0 <= hi0:
            parts.append(("[%d-%d]" % (lo0, hi0) if lo0 != hi0 else str(lo0)) + "[0-9]{%d}" % n)
        if b[1:] != "9"*n:
            parts.append(b[0] + "(" + same_len("0"*n, b[1:]) + ")")
        return "|".join(parts)
    a = lo
    while a <= hi:
        L = len(str(a))
        top = min(hi, 10**L - 1)
        out.append(same_len(str(a), str(top)))
        a = top + 1
    return "|".join(out)

def dec_range(lo, hi, positive=False):
    """regex for plain decimals (digits, optional fraction) v with lo <= v <= hi (hi an integer);
    may refuse some values near a non-integer lo (stricter)."""
    lo, hi = F(lo), F(hi)
    assert hi.denominator == 1
    H = int(hi)
    alts = []
    if lo == 0:
        L = 0
        if positive:
            alts.append(r"0*\.[0-9]*[1-9][0-9]*")
        else:
            alts.append(r"0*\.[0-9]+|0+(\.[0-9]*)?")
        L = 1
    elif lo <= F(9, 10):
        # 0.d... with d at least lo's first decimal, rounded up: sound,
        # stricter just above lo when lo has more decimals.
        d = -(-(lo * 10).numerator // (lo * 10).denominator)
        alts.append(r"0*\.[%d-9][0-9]*" % d)
        L = 1
    else:
        L = -(-lo.numerator // lo.denominator)  # ceil
    if L <= H - 1:
        alts.append("0*(%s)(\\.[0-9]*)?" % int_range(L, H - 1))
    if H >= max(L, 1):
        alts.append("0*%d(\\.0*)?" % H)
    if not alts: return None
    return "(" + "|".join(alts) + ")"

UNITS = [("ns", F(1, 10**9)), ("us", F(1, 10**6)), ("\u00b5s", F(1, 10**6)), ("ms", F(1, 1000)), ("s", F(1)), ("m", F(60)), ("h", F(3600))]

def single(lo, hi, positive=False):
    alts = []
    for u, mult in UNITS:
        h = hi / mult
        if h.denominator != 1:
            # hi is not a whole number of u: only zero (stricter)
            if lo == 0 and not positive:
                alts.append(r"(0+(\.0*)?|0*\.0+)" + u)
            continue
        if positive:
            # time.ParseDuration truncates to whole nanoseconds: "0.5ns" is 0.
            r = dec_range(max(lo / mult, F(1, 10**9) / mult), h)
        else:
            r = dec_range(lo / mult, h)
        if r: alts.append(r + re.escape(u) if u != "\u00b5s" else r + "\u00b5s")
    return alts

S60 = r"(0*([0-9]|[1-5][0-9])(\.[0-9]*)?s)"  # 0..59.x s
M60 = r"(0*([0-9]|[1-5][0-9])m)"
def multi(hi):
    """the XhYmZs form, leading component a whole number >= 1, total <= hi (a whole number of minutes or hours, or less than 1m)"""
    alts = []
    hi = F(hi)
    if hi >= 3600:
        H = int(hi // 3600); assert hi % 3600 == 0
        if H >= 2: alts.append("0*(%s)h(%s%s?|%s)" % (int_range(1, H - 1), M60, S60, S60))
        alts.append("0*%dh(0+m)?(0+(\\.0*)?s)?" % H)
        alts.append("0*(%s)m%s" % (int_range(1, H * 60 - 1), S60))
        alts.append("0*%dm0+(\\.0*)?s" % (H * 60))
    elif hi >= 60:
        M = int(hi // 60); assert hi % 60 == 0
        if M >= 2: alts.append("0*(%s)m%s" % (int_range(1, M - 1), S60))
        alts.append("0*%dm0+(\\.0*)?s" % M)
    return alts

def duration(lo, hi, positive=False):
    alts = single(lo, hi, positive) + multi(hi)
    if lo == 0 and not positive: alts.append("0")
    return "(" + "|".join(alts) + ")"

def anchored(p): return "^" + p + "$"

def patterns():
    pats = {
        "minAvailable": level(R1_50),
        "criticalAvailable": level(R0_50),
        "releaseAvailable": level(R1_90),
        "interval": anchored(duration(F(1, 10), 86400)),
        "cooldown": anchored(duration(1, 3600)),
        "growthWindow": anchored(duration(5, 600)),
        "grace": anchored(duration(0, 60)),
    }
    # PSI trigger: the window 500ms..10s, the stall in (0, window]. A stall
    # of at most 500ms goes with any window; a longer one with a window of
    # at least the whole second k it is at most (stricter: 1.5s in 1.7s).
    pr = ["((%s) %s)" % ("|".join(single(0, F(1, 2), True)), duration(F(1, 2), 10))]
    for k in range(1, 11):
        pr.append("((%s) %s)" % ("|".join(single(0, k, True) + multi(k)), duration(k, 10)))
    pats["pressure"] = "^(some|full) (" + "|".join(pr) + ")$"
    for p in pats.values():
        re.compile(p)
    return pats


if __name__ == "__main__":
    print(json.dumps(patterns(), indent=2, ensure_ascii=False))
