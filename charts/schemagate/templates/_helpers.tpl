{{/*
Names and labels of the objects this chart renders itself (the Job, its ServiceAccount, the
helm test Pod). The named templates other charts include are in _snippets.tpl and never use
these: they run in the including chart's context.
*/}}

{{- define "schemagate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "schemagate.fullname" -}}
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

{{- define "schemagate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "schemagate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "schemagate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "schemagate.labels" -}}
helm.sh/chart: {{ include "schemagate.chart" . }}
{{ include "schemagate.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: schemagate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "schemagate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "schemagate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The migration Job's name. In job mode it ends with 8 hex digits of the sha256 of the schemagate
image, the migrations image and migrations.checksum: a new image or migration set makes a new
Job (a Job's pod template cannot change), and Helm deletes the previous one. A hook Job keeps
one name, so that before-hook-creation replaces a failed one.
*/}}
{{- define "schemagate.jobName" -}}
{{- $base := include "schemagate.fullname" . | trunc 46 | trimSuffix "-" }}
{{- if eq .Values.mode "helmHook" }}
{{- printf "%s-migrate" $base }}
{{- else }}
{{- printf "%s-migrate-%s" $base (include "schemagate.generation" (dict "values" .Values "context" .)) }}
{{- end }}
{{- end }}

{{/*
Annotations that make an object a pre-install,pre-upgrade hook. Takes dict "root" . "offset" N:
the hook weight is helmHook.weight + offset (the ServiceAccount comes before the Job).
*/}}
{{- define "schemagate.hookAnnotations" -}}
{{- $v := .root.Values.helmHook }}
{{- $weight := add (int $v.weight) (int .offset) }}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ $weight | quote }}
helm.sh/hook-delete-policy: {{ $v.deletePolicy }}
{{- if $v.argocd }}
argocd.argoproj.io/hook: PreSync
argocd.argoproj.io/sync-wave: {{ $weight | quote }}
argocd.argoproj.io/hook-delete-policy: {{ include "schemagate.argocdDeletePolicy" $v.deletePolicy }}
{{- end }}
{{- end }}

{{/* before-hook-creation,hook-succeeded -> BeforeHookCreation,HookSucceeded */}}
{{- define "schemagate.argocdDeletePolicy" -}}
{{- $out := list }}
{{- range (splitList "," .) }}
{{- $out = append $out (. | trim | replace "-" " " | title | replace " " "") }}
{{- end }}
{{- join "," $out }}
{{- end }}

{{/*
Rules that depend on the mode of this chart. Every template that renders an object of the
Job's modes includes it, so the refusal is the same whichever Helm renders first.
*/}}
{{- define "schemagate.validateMode" -}}
{{- if and (has .Values.mode (list "job" "helmHook")) (eq .Values.lock "raft") }}
{{- fail (printf "schemagate: lock: %q needs the replicas of a Deployment; mode %q runs one migrator pod, so use lock: postgres (or mode: snippets)" .Values.lock .Values.mode) }}
{{- end }}
{{- if and (has .Values.mode (list "job" "helmHook")) .Values.neverMigrate }}
{{- fail "schemagate: neverMigrate: true leaves nobody to migrate in mode job or helmHook; set it in the chart whose pods only wait" }}
{{- end }}
{{- end }}
