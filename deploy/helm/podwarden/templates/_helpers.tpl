{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "podwarden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, unless it does not contain the chart name. */}}
{{- define "podwarden.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "podwarden.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "podwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels; `podwarden status` finds the agents by app.kubernetes.io/name. */}}
{{- define "podwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "podwarden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "podwarden.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "podwarden.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* By digest when image.digest is set (a release's chart pins the
multi-platform index it was built with: what was signed is what runs, on
amd64 and arm64 alike), else by tag. */}}
{{- define "podwarden.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/* "true" when a protected rule of the policy matches by exe: only then
does the agent read /proc/PID/exe of host daemons, which needs SYS_PTRACE. */}}
{{- define "podwarden.exeRules" -}}
{{- range .Values.policy.protected }}{{ if .exe }}true{{ end }}{{ end }}
{{- end }}

{{/* Why the agent needs a capability, rendered as a comment beside it. */}}
{{- define "podwarden.capabilityWhy" -}}
{{- $why := dict
  "SYS_RESOURCE" "lower protected host daemons' oom_score_adj below their oom_score_adj_min"
  "DAC_OVERRIDE" "write /proc/PID/oom_score_adj of target processes owned by other uids (mode 0644)"
  "NET_ADMIN" "subscribe to the netlink process connector (fork/exec events)"
  "SYS_PTRACE" "readlink /proc/PID/exe for the policy's exe: rules, open /proc/PID/root for preempt.messageFile (ptrace read checks; never attaches)"
  "SYSLOG" "read kernel OOM reports: /dev/kmsg under dmesg_restrict, or syslog(2) where the device is refused"
  "KILL" "policy.preempt: signal the one process it ends under memory pressure (another user's) through its pidfd"
  "IPC_LOCK" "policy.preempt: lock the agent's pages so its code is not evicted while the node thrashes"
  "SYS_NICE" "policy.preempt: run the engine's thread at nice -20, so a thrashing node's reclaim does not starve the decision"
-}}
{{- get $why . | default "added by capabilities.add in values" }}
{{- end }}

{{/*
The probes' scheme and Authorization header for the metrics web config.
*/}}
{{- define "podwarden.probeWeb" -}}
{{- with .Values.metrics.webConfig }}
{{- if and .secretName .tls }}
scheme: HTTPS
{{- end }}
{{- if and .secretName .probeAuthorization }}
httpHeaders:
  - name: Authorization
    value: {{ .probeAuthorization | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A monitor endpoint's scheme, tlsConfig and basicAuth for the web config.
*/}}
{{- define "podwarden.monitorWeb" -}}
{{- with .Values.metrics.webConfig }}
{{- if and .secretName .tls }}
scheme: https
{{- end }}
{{- with .monitorTLSConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .monitorBasicAuth }}
basicAuth:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- if eq .Values.metrics.auth "kubernetes" }}
authorization:
  type: Bearer
  credentials:
    name: {{ include "podwarden.metricsReader" . }}-token
    key: token
{{- end }}
{{- end }}

{{/*
The ServiceAccount (and ClusterRole) that may read the agents' /metrics.
*/}}
{{- define "podwarden.metricsReader" -}}
{{ include "podwarden.fullname" . | trunc 48 | trimSuffix "-" }}-metrics-reader
{{- end }}

{{/*
podwarden.levelParts reads a preempt threshold as the agent's
policy.ParseLevel does ("10%", "10", "2GiB", "10% 2GiB", "10%,2GiB") into
{"pct": P, "bytes": B} (0 where a part is absent); the schema has already
checked its form.
*/}}
{{- define "podwarden.levelParts" -}}
{{- $pct := 0.0 -}}
{{- $bytes := 0.0 -}}
{{- $units := dict "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "K" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 -}}
{{- range $part := regexSplit "[ ,]+" (toString . | trim) -1 -}}
{{- if regexMatch "^[0-9.]+%?$" $part -}}
{{- $pct = float64 (trimSuffix "%" $part) -}}
{{- else if regexMatch "^[0-9.]+(Ki|Mi|Gi|Ti|K|M|G|T)B?$" $part -}}
{{- $num := regexFind "^[0-9.]+" $part -}}
{{- $bytes = mulf (float64 $num) (get $units (trimSuffix "B" (trimPrefix $num $part))) -}}
{{- end -}}
{{- end -}}
{{- dict "pct" $pct "bytes" $bytes | toJson -}}
{{- end -}}

{{/*
podwarden.checkThresholds fails the render when one domain's thresholds
are out of order, as the agent's policy validation would refuse them at
start (every node crash-looping): criticalAvailable below minAvailable
below releaseAvailable, percentages with percentages and sizes with sizes
(a JSON Schema cannot compare two keys). Called with (dict "key" KEY "t"
THRESHOLDS).
*/}}
{{- define "podwarden.checkThresholds" -}}
{{- $k := .key -}}
{{- with .t -}}
{{- $m := include "podwarden.levelParts" (.minAvailable | default "") | fromJson -}}
{{- $c := include "podwarden.levelParts" (.criticalAvailable | default "") | fromJson -}}
{{- $r := include "podwarden.levelParts" (.releaseAvailable | default "") | fromJson -}}
{{- if and (gt $c.pct 0.0) (gt $m.pct 0.0) (ge $c.pct $m.pct) -}}
{{- fail (printf "%s.criticalAvailable: %v%% must be below %s.minAvailable %v%% (or 0 to turn it off)" $k $c.pct $k $m.pct) -}}
{{- end -}}
{{- if and (gt $c.bytes 0.0) (gt $m.bytes 0.0) (ge $c.bytes $m.bytes) -}}
{{- fail (printf "%s.criticalAvailable: %v must be below %s.minAvailable %v (or 0 to turn it off)" $k .criticalAvailable $k .minAvailable) -}}
{{- end -}}
{{- if and (gt $r.pct 0.0) (gt $m.pct 0.0) (le $r.pct $m.pct) -}}
{{- fail (printf "%s.releaseAvailable: %v%% must be above %s.minAvailable %v%%" $k $r.pct $k $m.pct) -}}
{{- end -}}
{{- if and (gt $r.bytes 0.0) (gt $m.bytes 0.0) (le $r.bytes $m.bytes) -}}
{{- fail (printf "%s.releaseAvailable: %v must be above %s.minAvailable %v" $k .releaseAvailable $k .minAvailable) -}}
{{- end -}}
{{- end -}}
{{- end -}}
