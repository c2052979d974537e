#!/usr/bin/env python3
"""Regenerates the fixture cgroup trees next to this script.

Run from anywhere: python3 testdata/mkfixtures.py. The trees are committed;
this script documents how they were made and what each cgroup stands for.
Values mirror what kernels 5.x/6.x print (see FACTS.md).
"""
import os, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
UID = "30e633b5-4140-4774-9122-1b9e140c8556"
UID2 = "7a1f0c2e-5b3d-4e6f-8a9b-0c1d2e3f4a5b"
UID3 = "c0ffee00-1111-2222-3333-444455556666"
CID = "2c6ca22c5968ca227b2b77480c87fa56044a98fb92280ce03e613d95b6ea505b"
CID2 = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
CID3 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
U = lambda u: u.replace("-", "_")
V1MAX = "9223372036854771712"


def tree(name, files):
    root = os.path.join(HERE, name)
    shutil.rmtree(root, ignore_errors=True)
    for path, content in files.items():
        p = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(content)


def v1cg(path, limit=V1MAX, usage="0", procs="", oom="0 0 0", failcnt="0", memsw=None, memswfail="0"):
    d, u, k = oom.split()
    files = {
        path + "/cgroup.procs": procs,
        path + "/memory.limit_in_bytes": limit + "\n",
        path + "/memory.usage_in_bytes": usage + "\n",
        path + "/memory.oom_control": f"oom_kill_disable {d}\nunder_oom {u}\noom_kill {k}\n",
        path + "/memory.failcnt": failcnt + "\n",
    }
    if memsw is not None:  # absent: booted without swap accounting
        files[path + "/memory.memsw.limit_in_bytes"] = memsw + "\n"
        files[path + "/memory.memsw.failcnt"] = memswfail + "\n"
    return files


def v2cg(path, mx="max", current="0", procs="", events=None, pressure=None, oomgroup="0", swap="max"):
    ev = events or dict(low=0, high=0, max=0, oom=0, oom_kill=0, oom_group_kill=0)
    files = {
        path + "/cgroup.procs": procs,
        path + "/memory.max": mx + "\n",
        path + "/memory.current": current + "\n",
        path + "/memory.events": "".join(f"{k} {v}\n" for k, v in ev.items()),
        path + "/memory.pressure": pressure or "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    }
    if oomgroup is not None:  # absent: kernel before 4.19
        files[path + "/memory.oom.group"] = oomgroup + "\n"
    if swap is not None:  # absent: no swap accounting
        files[path + "/memory.swap.max"] = swap + "\n"
    return files


# cgroup v1, kubelet cgroupfs driver, containerd (bare ids).
f = {"memory/cgroup.procs": "1\n2\n"}
f.update(v1cg("memory", usage="3221225472", memsw=V1MAX))
f.update(v1cg("memory/kubepods", limit="8589934592", usage="1073741824", memsw=V1MAX))
f.update(v1cg("memory/kubepods/burstable", usage="805306368", memsw=V1MAX))
f.update(v1cg(f"memory/kubepods/burstable/pod{UID}", limit="536870912", usage="402653184", memsw="805306368"))
# Container hit its limits 17+4 times, 3 kills; memsw == limit means no swap.
f.update(v1cg(f"memory/kubepods/burstable/pod{UID}/{CID}", limit="268435456", usage="268181504",
              procs="4242\n4243\n", oom="0 0 3", failcnt="17", memsw="268435456", memswfail="4"))
f.update(v1cg(f"memory/kubepods/burstable/pod{UID}/{CID2}", usage="4096", procs="4300\n", memsw=V1MAX))
f.update(v1cg("memory/kubepods/besteffort", usage="0"))
f.update(v1cg(f"memory/kubepods/besteffort/pod{UID2}", usage="0"))
f.update(v1cg(f"memory/kubepods/besteffort/pod{UID2}/{CID3}", usage="0", procs="5000\n"))
# Guaranteed pod with the OOM killer disabled: tasks stall at the limit.
f.update(v1cg(f"memory/kubepods/pod{UID3}", limit="1073741824", usage="1073741824", memsw=V1MAX))
f.update(v1cg(f"memory/kubepods/pod{UID3}/{CID}", limit="1073741824", usage="1073741824",
              procs="6000\n", oom="1 1 0", failcnt="99", memsw="2147483648"))
f.update(v1cg("memory/system.slice", usage="52428800", memsw=V1MAX))
f.update(v1cg("memory/system.slice/sshd.service", usage="4194304", procs="700\n", memsw=V1MAX))
tree("v1-cgroupfs", f)

# cgroup v2, kubelet systemd driver, containerd, kernel 6.x.
pod = f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{U(UID)}.slice"
gpod = f"kubepods.slice/kubepods-pod{U(UID3)}.slice"
f = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
    "cgroup.procs": "1\n2\n",
    "memory.pressure": "some avg10=1.50 avg60=0.75 avg300=0.20 total=123456\nfull avg10=0.50 avg60=0.25 avg300=0.05 total=45678\n",
}
f.update(v2cg("kubepods.slice", mx="8589934592", current="1073741824"))
f.update(v2cg("kubepods.slice/kubepods-burstable.slice", current="805306368"))
f.update(v2cg(pod, mx="536870912", current="402653184"))
# kubelet >= 1.28 asks for oom.group=1; one group kill took two processes.
f.update(v2cg(pod + f"/cri-containerd-{CID}.scope", mx="268435456", current="268173312", procs="4242\n4243\n",
              events=dict(low=0, high=0, max=42, oom=2, oom_kill=3, oom_group_kill=1),
              pressure="some avg10=12.34 avg60=5.00 avg300=1.25 total=987654\nfull avg10=10.00 avg60=4.00 avg300=1.00 total=876543\n",
              oomgroup="1", swap="0"))
# crun's extra leaf: processes live here, limits one level up.
f.update(v2cg(pod + f"/cri-containerd-{CID}.scope/container", current="268173312", procs="4244\n"))
f.update(v2cg(pod + f"/cri-containerd-{CID2}.scope", current="4096", procs="4300\n", oomgroup="1"))
# Kernel before 4.19/5.17 and no swap accounting: no oom.group, no
# oom_group_kill line, no memory.swap.max.
f.update(v2cg(gpod, mx="1073741824", current="1048576", oomgroup=None, swap=None,
              events=dict(low=0, high=0, max=0, oom=0, oom_kill=0)))
f.update(v2cg(gpod + f"/cri-containerd-{CID3}.scope", mx="1073741824", current="1048576", procs="6000\n",
              oomgroup=None, swap=None, events=dict(low=0, high=0, max=0, oom=0, oom_kill=0)))
f.update(v2cg("system.slice", current="52428800"))
f.update(v2cg("system.slice/sshd.service", current="4194304", procs="700\n"))
tree("v2-systemd", f)

# cgroup v2, kubelet cgroupfs driver, CRI-O (the seed's layout).
f = {"cgroup.controllers": "cpuset cpu io memory pids\n", "cgroup.procs": "1\n"}
f.update(v2cg("kubepods", mx="8589934592"))
f.update(v2cg(f"kubepods/pod{UID}", mx="536870912", current="1024"))
f.update(v2cg(f"kubepods/pod{UID}/crio-{CID}", mx="536870912", current="1024", procs="4242\n", oomgroup="1"))
f.update(v2cg(f"kubepods/pod{UID}/crio-conmon-{CID}", current="512", procs="4241\n"))
f.update(v2cg("kubepods/besteffort", current="0"))
f.update(v2cg(f"kubepods/besteffort/pod{UID2}", current="0"))
f.update(v2cg(f"kubepods/besteffort/pod{UID2}/crio-{CID3}", current="0", procs="5000\n", oomgroup="1"))
tree("v2-cgroupfs", f)

# Hybrid (systemd's default before v2): v1 memory controller plus an empty
# unified hierarchy carrying PSI for the units systemd mirrors there.
# kubelet systemd driver, CRI-O with conmon.
pod = f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{U(UID2)}.slice"
f = {"memory/cgroup.procs": "1\n", "unified/cgroup.controllers": "", "unified/cgroup.procs": "1\n",
     "unified/memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"}
f.update(v1cg("memory", memsw=V1MAX))
f.update(v1cg("memory/kubepods.slice", limit="8589934592", usage="104857600", memsw=V1MAX))
f.update(v1cg("memory/kubepods.slice/kubepods-besteffort.slice", usage="104857600", memsw=V1MAX))
f.update(v1cg("memory/" + pod, usage="104857600", memsw=V1MAX))
f.update(v1cg("memory/" + pod + f"/crio-{CID}.scope", usage="100663296", procs="4242\n", oom="0 0 1", failcnt="5", memsw=V1MAX))
f.update(v1cg("memory/" + pod + f"/crio-conmon-{CID}.scope", usage="1048576", procs="4241\n", memsw=V1MAX))
for d in ["kubepods.slice", "kubepods.slice/kubepods-besteffort.slice", pod, pod + f"/crio-{CID}.scope"]:
    f["unified/" + d + "/cgroup.procs"] = ""
    f["unified/" + d + "/memory.pressure"] = "some avg10=3.00 avg60=2.00 avg300=1.00 total=3000\nfull avg10=1.00 avg60=0.50 avg300=0.25 total=1000\n"
# conmon's scope is not mirrored in unified: Pressure must say unsupported.
tree("hybrid-systemd", f)
