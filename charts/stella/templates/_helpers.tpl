{{- define "stella.namespace" -}}{{ .Values.operatorNamespace | default .Release.Namespace }}{{- end -}}
{{- define "stella.labels" -}}
app.kubernetes.io/name: stella
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: stella
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "stella.selector" -}}
app.kubernetes.io/name: stella
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "stella.serviceAccount" -}}stella-operator{{- end -}}
{{- define "stella.tlsSecret" -}}{{ .Values.webhook.tlsSecretName | default "stella-webhook-tls" }}{{- end -}}
{{- define "stella.hubTlsSecret" -}}{{ .Values.agentHub.tlsSecretName | default "stella-agent-hub-tls" }}{{- end -}}
{{- define "stella.consoleLabels" -}}
app.kubernetes.io/name: stella-console
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: stella
app.kubernetes.io/component: console
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "stella.consoleSelector" -}}
app.kubernetes.io/name: stella-console
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "stella.admissionLabels" -}}
app.kubernetes.io/name: stella-admission
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: stella
app.kubernetes.io/component: admission
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "stella.admissionSelector" -}}
app.kubernetes.io/name: stella-admission
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
