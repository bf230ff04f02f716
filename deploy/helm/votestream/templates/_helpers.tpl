{{/* Labels shared by every object; `app` is what terraform's ALB target-group Services select on. */}}
{{- define "votestream.labels" -}}
app.kubernetes.io/name: votestream
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "votestream.selector" -}}
app: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "votestream.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The restricted Pod Security Standard, pod level. */}}
{{- define "votestream.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The restricted Pod Security Standard, container level, plus a read-only root filesystem. */}}
{{- define "votestream.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "votestream.nodePlacement" -}}
nodeSelector:
  votestream.io/pool: {{ .pool }}
tolerations:
  - key: votestream.io/pool
    operator: Equal
    value: {{ .pool }}
    effect: NoSchedule
{{- end -}}

{{/* Environment of a votestream container: common settings, SECRETS_DIR, then its own. */}}
{{- define "votestream.env" -}}
{{- $env := merge (dict) .own (dict "SECRETS_DIR" .root.Values.secretsMountPath) .root.Values.commonEnv -}}
{{- range $k := keys $env | sortAlpha }}
- name: {{ $k }}
  value: {{ index $env $k | toString | quote }}
{{- end }}
{{- end -}}
