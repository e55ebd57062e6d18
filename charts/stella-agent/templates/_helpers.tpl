{{- /* One agent per release: two agents in one cluster (different namespaces) do not clash. */}}
{{- define "agent.name" -}}
{{- if eq .Release.Name "stella-agent" }}stella-agent{{ else }}{{ printf "%s-stella-agent" .Release.Name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end -}}
{{- define "agent.labels" -}}
app.kubernetes.io/name: stella-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: stella
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "agent.selector" -}}
app.kubernetes.io/name: stella-agent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "agent.caConfigMap" -}}{{ .Values.hub.caConfigMap | default (printf "%s-hub-ca" (include "agent.name" .)) }}{{- end -}}
