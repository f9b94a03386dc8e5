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
The migration Job's name. A Job's pod template and podFailurePolicy cannot change once it
exists: an upgrade that changed either under the same name would fail with "field is
immutable". So in job mode the name ends with 8 hex digits of the sha256 of the chart version,
migrations.checksum, and both parts as rendered: any value that reaches the pod (an image, an
env entry, logLevel, resources, scheduling, labels) makes a new Job, which Helm creates while
it deletes the previous one; the same values render the same name, and the finished Job
stays. A hook Job keeps one name, so that before-hook-creation replaces a failed one.

schemagate.jobName takes the root context and renders the parts itself (for NOTES.txt);
job.yaml renders them once and passes them to schemagate.jobNameFor:
dict "root" . "immutable" (list $podFailurePolicy $podTemplate).
*/}}
{{- define "schemagate.jobName" -}}
{{- $immutable := list (include "schemagate.podFailurePolicy" .) (include "schemagate.jobPodTemplate" .) }}
{{- include "schemagate.jobNameFor" (dict "root" . "immutable" $immutable) }}
{{- end }}

{{- define "schemagate.jobNameFor" -}}
{{- $root := .root }}
{{- $base := include "schemagate.fullname" $root | trunc 46 | trimSuffix "-" }}
{{- if eq $root.Values.mode "helmHook" }}
{{- printf "%s-migrate" $base }}
{{- else }}
{{- $in := concat (list $root.Chart.Version (toString $root.Values.migrations.checksum)) .immutable | join "\n" }}
{{- printf "%s-migrate-%s" $base (sha256sum $in | trunc 8) }}
{{- end }}
{{- end }}

{{/*
The Job's podFailurePolicy. The exit codes of schemagate (README, "Exit codes"): 2 invalid
input, 3 migration failed, 6 database ahead and 8 fleet disagrees need a change before a retry
can help, so they fail the Job at once; 4 timed out and 5 unreachable count against
backoffLimit. 7 (app not started) comes only from exec, which the Job does not run; it is
listed with the other codes no retry can fix. A pod evicted or preempted is retried without
counting.
*/}}
{{- define "schemagate.podFailurePolicy" -}}
rules:
  - action: FailJob
    onExitCodes:
      containerName: schemagate
      operator: In
      values: [2, 3, 6, 7, 8]
  - action: Ignore
    onPodConditions:
      - type: DisruptionTarget
{{- end }}

{{/*
The Job's pod template (metadata and spec), from the root context.
*/}}
{{- define "schemagate.jobPodTemplate" -}}
{{- $args := dict "values" .Values "context" . "name" (include "schemagate.fullname" .) "command" "migrate" -}}
metadata:
  labels:
    {{- include "schemagate.labels" . | nindent 4 }}
    app.kubernetes.io/component: migrate
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  restartPolicy: Never
  enableServiceLinks: false
  serviceAccountName: {{ include "schemagate.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- include "schemagate.ownPodSpec" $args | nindent 2 }}
  containers:
    - {{ include "schemagate.container" $args | nindent 6 | trim }}
  {{- with include "schemagate.volumes" $args }}
  volumes:
    {{- . | nindent 4 }}
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
