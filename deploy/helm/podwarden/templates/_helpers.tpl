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
