{{- define "bme.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "bme.fullname" -}}
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

{{- define "bme.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bme.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bme.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "bme.selectorLabels" . }}
app.kubernetes.io/component: exporter
{{- /* the same whatever the release and nameOverride: the ServiceMonitor's jobLabel, so the
targets' job is "binance-margin-exporter", which the down alert matches */}}
app.kubernetes.io/part-of: binance-margin-exporter
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "bme.probe" -}}
{{- $tls := .Values.webConfig.tls_server_config }}
{{- if and $tls (eq (default "" $tls.client_auth_type) "RequireAndVerifyClientCert") }}
tcpSocket:
  port: metrics
{{- else }}
httpGet:
  path: /healthz
  port: metrics
  scheme: {{ if $tls }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}
{{- end }}

{{- define "bme.secretName" -}}
{{- if .Values.existingSecret }}{{ .Values.existingSecret }}{{ else }}{{ include "bme.fullname" . }}{{ end }}
{{- end }}

