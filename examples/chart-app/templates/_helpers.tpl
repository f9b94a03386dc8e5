{{- define "chart-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chart-app.fullname" -}}
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

{{- define "chart-app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chart-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chart-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "chart-app.labels" -}}
helm.sh/chart: {{ include "chart-app.chart" . }}
{{ include "chart-app.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "chart-app.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/*
The arguments of the schemagate snippets: its values, the root context, the name its objects
derive from, the replicas (Raft peers), the app's own image to copy the migrations from, and
the labels of the objects they render (the raft Service selects the app's pods).
*/}}
{{- define "chart-app.schemagate" -}}
{{- $labels := include "chart-app.labels" . | fromYaml }}
{{- $selector := include "chart-app.selectorLabels" . | fromYaml }}
{{- toJson (dict "name" (include "chart-app.fullname" .) "replicas" (int .Values.replicaCount) "migrationsImage" (include "chart-app.image" .) "labels" $labels "selectorLabels" $selector) }}
{{- end }}

{{/*
The labels of the helm test Pod: not the app's name, so that the app's Service never selects it.
*/}}
{{- define "chart-app.testLabels" -}}
{{- toJson (merge (dict "app.kubernetes.io/name" "schemagate" "app.kubernetes.io/component" "test") (include "chart-app.labels" . | fromYaml)) }}
{{- end }}

{{/*
With schemagate.lock: raft, a rollout that changes the migrations needs all its new pods at
once: the cluster forms only when every one of the replicas is up (raft.expect), and the old
pods belong to the previous release's cluster. A RollingUpdate that adds one pod at a time
would wait for the rest forever.
*/}}
{{- define "chart-app.validateStrategy" -}}
{{- if eq .Values.schemagate.lock "raft" }}
{{- $s := .Values.strategy | default dict }}
{{- $surge := dig "rollingUpdate" "maxSurge" "" $s | toString }}
{{- $all := or (eq (toString $s.type) "Recreate") (and (hasSuffix "%" $surge) (ge (trimSuffix "%" $surge | atoi) 100)) (and (regexMatch "^[0-9]+$" $surge) (ge (atoi $surge) (int .Values.replicaCount))) }}
{{- if not $all }}
{{- fail (printf "strategy: with schemagate.lock: raft the new pods of a rollout must start together (the Raft cluster forms when all %d are up): set strategy.rollingUpdate.maxSurge: 100%% (room for a second set of pods), or strategy.type: Recreate (a short outage); maxSurge is %q" (int .Values.replicaCount) $surge) }}
{{- end }}
{{- end }}
{{- end }}
