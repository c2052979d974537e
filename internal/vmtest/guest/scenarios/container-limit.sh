# container-limit: one container at its memory.max. Kubernetes ships
# memory.oom.group=1 and -997, so the kernel kills the whole container;
# with the agent (oom.group=0, adj 900) it kills only the hog.
CTR=/kubepods/pod5b1f0c4e-7a1d-4c39-9f0e-1c2d3e4f5a61/3f4e5d6c7b8a99887766554433221100ffeeddccbbaa99887766554433221100
mkcg "$CTR" 1 48M
shipped_pod "$CTR"
state "$CTR"
go_hog tail 120
