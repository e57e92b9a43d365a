{{- define "chainsync.labels" -}}
app.kubernetes.io/name: chainsync
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- define "chainsync.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end }}
