{{/*
Named templates that put schemagate into another chart's pods. This file is self-contained: a
chart that cannot depend on this one may copy it, together with the schemagate block of
values.yaml. Each template takes a dict:

  values          the schemagate values (.Values.schemagate in an including chart)
  context         the root context ($)
  name            base name of the objects derived from the workload (the raft Service);
                  usually the including chart's fullname
  replicas        the workload's replicas (with lock: raft, the peers to wait for)
  migrationsImage optional: the image to copy the migrations from (usually the app's own
                  image), instead of migrations.fromImage.image
  labels          (raftService, testPod) labels of the rendered object
  annotations     (testPod) more annotations of the Pod (the helm.sh/hook ones win)
  podName         (testPod) the Pod's name, instead of <name>-schemagate-test
  serviceAccountName (testPod) optional
  selectorLabels  (raftService) the labels that select the workload's pods (its matchLabels)

Public templates (each renders YAML list items or one object; include them with nindent):

  schemagate.nativeSidecar  initContainers entries: the copy of the migrations (when
                            migrations.fromImage.enabled) and `schemagate serve` with
                            restartPolicy: Always, its port, and startup/readiness/liveness
                            probes. The app containers start once the schema is ready.
  schemagate.initContainer  initContainers entries: the copy and `schemagate migrate` (`wait`
                            with neverMigrate). The pod stays in Init until the schema is ready.
  schemagate.volumes        volumes entries the two above need (may be empty)
  schemagate.podLabels      labels for the workload's pod template (may be empty; with
                            lock: raft, the raft Service selects on them)
  schemagate.raftService    the headless Service Raft peers find each other through (lock: raft)
  schemagate.testPod        a helm test Pod running `schemagate check`, with its own deadline
                            (tests.timeout) and the chart's pod-level values (sidecars too)

Example, in the including chart's Deployment:

  {{- $sg := dict "values" .Values.schemagate "context" $ "name" (include "app.fullname" .)
               "replicas" .Values.replicaCount "migrationsImage" (include "app.image" .) }}
  template:
    metadata:
      labels:
        {{- include "app.selectorLabels" . | nindent 8 }}
        {{- with include "schemagate.podLabels" $sg }}
        {{- . | nindent 8 }}
        {{- end }}
    spec:
      initContainers:
        {{- include "schemagate.nativeSidecar" $sg | nindent 8 }}
      volumes:
        {{- include "schemagate.volumes" $sg | nindent 8 }}
*/}}

{{- define "schemagate.nativeSidecar" -}}
{{- include "schemagate.snippet.nativeSidecar" . | trim }}
{{- end }}

{{- define "schemagate.initContainer" -}}
{{- include "schemagate.snippet.initContainer" . | trim }}
{{- end }}

{{- define "schemagate.volumes" -}}
{{- include "schemagate.snippet.volumes" . | trim }}
{{- end }}

{{- define "schemagate.snippet.nativeSidecar" -}}
{{- include "schemagate.needsNativeSidecars" (dict "context" .context "what" "schemagate.nativeSidecar" "instead" "include schemagate.initContainer instead") }}
{{- $args := merge (dict "command" "serve") . }}
{{- $v := .values }}
{{ include "schemagate.copyMigrations" . }}
- {{ include "schemagate.container" $args | nindent 2 | trim }}
  restartPolicy: Always
  ports:
    - name: schemagate
      containerPort: {{ int $v.sidecar.port }}
      protocol: TCP
    {{- if eq $v.lock "raft" }}
    - name: raft
      containerPort: {{ int $v.raft.port }}
      protocol: TCP
    {{- end }}
  startupProbe:
    httpGet:
      path: /readyz
      port: schemagate
    {{- toYaml (omit $v.sidecar.startupProbe "httpGet") | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: schemagate
    {{- toYaml (omit $v.sidecar.readinessProbe "httpGet") | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /livez
      port: schemagate
    {{- toYaml (omit $v.sidecar.livenessProbe "httpGet") | nindent 4 }}
{{- end }}

{{- define "schemagate.snippet.initContainer" -}}
{{- $command := ternary "wait" "migrate" (eq (toString .values.neverMigrate) "true") }}
{{- $args := merge (dict "command" $command) . }}
{{ include "schemagate.copyMigrations" . }}
- {{ include "schemagate.container" $args | nindent 2 | trim }}
  {{- if eq .values.lock "raft" }}
  ports:
    - name: raft
      containerPort: {{ int .values.raft.port }}
      protocol: TCP
  {{- end }}
{{- end }}

{{/*
The fields every schemagate container shares: image, args, env, security context, resources,
volume mounts. Takes the snippet dict plus "command" (migrate, wait, serve or check).
*/}}
{{- define "schemagate.container" -}}
{{- $v := .values }}
{{- include "schemagate.validate" . -}}
name: schemagate
image: {{ include "schemagate.image" . | quote }}
imagePullPolicy: {{ $v.image.pullPolicy | default "IfNotPresent" }}
args:
  {{- include "schemagate.args" . | trim | nindent 2 }}
env:
  {{- include "schemagate.env" . | trim | nindent 2 }}
{{- with $v.extraEnvFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with include "schemagate.containerSecurityContext" . | trim }}
securityContext:
  {{- . | nindent 2 }}
{{- end }}
{{- with $v.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with include "schemagate.volumeMounts" . | trim }}
volumeMounts:
  {{- . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Does this command take part in the election? migrate, wait and serve do: with lock: raft they
are the cluster's members. check only reads the database once: it gets the lock setting (so it
reads through the same kind of connection) but no Raft flags, no POD_IP and no Raft secret, and
not extraArgs either (flags of the commands that wait, which check does not have).
*/}}
{{- define "schemagate.elects" -}}
{{- if has .command (list "migrate" "wait" "serve") }}true{{ end }}
{{- end }}

{{- define "schemagate.args" -}}
{{- $v := .values }}
- {{ .command }}
{{- if include "schemagate.elects" . }}
{{- if eq $v.lock "raft" }}
- --raft-listen
- {{ printf ":%d" (int $v.raft.port) | quote }}
- --raft-advertise
- {{ printf "$(POD_IP):%d" (int $v.raft.port) | quote }}
- --raft-discover
- {{ printf "dns:%s.%s.svc.%s" (include "schemagate.raftServiceName" .) .context.Release.Namespace ($v.raft.clusterDomain | default "cluster.local") | quote }}
- --raft-expect
- {{ include "schemagate.raftExpect" . | quote }}
{{- end }}
{{- range $v.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Settings go in the environment (SCHEMAGATE_<FLAG>); the database URL only ever from a Secret.
*/}}
{{- define "schemagate.env" -}}
{{- $v := .values }}
{{- $elects := include "schemagate.elects" . }}
{{- if and (eq $v.lock "raft") $elects }}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
{{- end }}
{{- if $v.database.urlFile }}
- name: SCHEMAGATE_DATABASE_URL_FILE
  value: {{ printf "%s/url" (include "schemagate.databaseUrlDir" .) | quote }}
{{- else }}
- name: SCHEMAGATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "schemagate.databaseSecret" . }}
      key: {{ $v.database.secretKey | default "url" | quote }}
{{- end }}
- name: SCHEMAGATE_REPLICA_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: SCHEMAGATE_DIR
  value: {{ $v.migrations.dir | quote }}
- name: SCHEMAGATE_WHEN_AHEAD
  value: {{ $v.whenAhead | default "ready" | quote }}
{{- if eq .command "check" }}
- name: SCHEMAGATE_TIMEOUT
  value: {{ include "schemagate.testTimeout" . | quote }}
{{- else if not (kindIs "invalid" $v.timeout) }}
{{- with toString $v.timeout }}
- name: SCHEMAGATE_TIMEOUT
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: SCHEMAGATE_LOG_FORMAT
  value: {{ $v.logFormat | default "json" | quote }}
- name: SCHEMAGATE_LOG_LEVEL
  value: {{ $v.logLevel | default "info" | quote }}
- name: SCHEMAGATE_LOCK
  value: {{ $v.lock | default "postgres" | quote }}
{{- if eq .command "serve" }}
- name: SCHEMAGATE_LISTEN
  value: {{ printf ":%d" (int $v.sidecar.port) | quote }}
- name: SCHEMAGATE_SERVE_DETAIL
  value: {{ $v.sidecar.serveDetail | default "full" | quote }}
{{- if eq (toString $v.neverMigrate) "true" }}
- name: SCHEMAGATE_NEVER_MIGRATE
  value: "true"
{{- end }}
{{- end }}
{{- if and (eq $v.lock "raft") $elects }}
- name: SCHEMAGATE_RAFT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ required "schemagate: raft.existingSecret is required with lock: raft: create a Secret with the shared secret (kubectl create secret generic app-raft --from-literal=secret=\"$(openssl rand -hex 32)\") and set raft.existingSecret" $v.raft.existingSecret }}
      key: {{ $v.raft.secretKey | default "secret" | quote }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "schemagate.databaseSecret" -}}
{{- required "schemagate: database.existingSecret is required: create a Secret holding the database URL (kubectl create secret generic app-db --from-literal=url='postgres://user:password@host:5432/db') and set database.existingSecret=app-db" .values.database.existingSecret }}
{{- end }}

{{- define "schemagate.databaseUrlDir" -}}
/var/run/secrets/schemagate/database
{{- end }}

{{- define "schemagate.volumeMounts" -}}
{{- $v := .values }}
{{- if $v.migrations.fromImage.enabled }}
- name: schemagate-migrations
  mountPath: {{ $v.migrations.dir | quote }}
  readOnly: true
{{- end }}
{{- if $v.database.urlFile }}
- name: schemagate-database-url
  mountPath: {{ include "schemagate.databaseUrlDir" . | quote }}
  readOnly: true
{{- end }}
{{- with $v.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "schemagate.snippet.volumes" -}}
{{- $v := .values }}
{{- if $v.migrations.fromImage.enabled }}
- name: schemagate-migrations
  emptyDir: {}
{{- end }}
{{- if $v.database.urlFile }}
- name: schemagate-database-url
  secret:
    secretName: {{ include "schemagate.databaseSecret" . }}
    items:
      - key: {{ $v.database.secretKey | default "url" | quote }}
        path: url
{{- end }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The init container that copies the migration files from another image into the emptyDir
schemagate reads them from. Renders nothing unless migrations.fromImage.enabled.
*/}}
{{- define "schemagate.copyMigrations" -}}
{{- $v := .values }}
{{- $m := $v.migrations }}
{{- if $m.fromImage.enabled }}
- name: schemagate-copy-migrations
  image: {{ include "schemagate.migrationsImage" . | quote }}
  imagePullPolicy: {{ $m.fromImage.image.pullPolicy | default "IfNotPresent" }}
  command:
    {{- if $m.fromImage.command }}
    {{- toYaml $m.fromImage.command | nindent 4 }}
    {{- else }}
    - cp
    - -R
    - {{ printf "%s/." (trimSuffix "/" $m.fromImage.path) | quote }}
    - {{ printf "%s/" (trimSuffix "/" $m.dir) | quote }}
    {{- end }}
  {{- with include "schemagate.containerSecurityContext" . | trim }}
  securityContext:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: schemagate-migrations
      mountPath: {{ $m.dir | quote }}
{{- end }}
{{- end }}

{{/*
Image references. The schemagate tag defaults to the schemagate chart's appVersion (see
schemagate.chartAppVersion).
*/}}
{{- define "schemagate.image" -}}
{{- include "schemagate.imageRef" (dict "image" .values.image "key" "image" "defaultTag" (include "schemagate.chartAppVersion" .) "global" (include "schemagate.globalRegistry" .)) }}
{{- end }}

{{/* global.imageRegistry, or nothing. */}}
{{- define "schemagate.globalRegistry" -}}
{{- get (get .values "global" | default dict) "imageRegistry" | default "" }}
{{- end }}

{{/*
The appVersion of the schemagate chart, found by its annotation schemagate.io/chart whatever
name it goes by (a dependency under an alias is renamed): the chart's own in its own
templates; from a chart that includes the snippets, that of its schemagate dependency, the
one whose values were passed if it has several. Empty when there is none (a copy of this
file): then image.tag must be set.
*/}}
{{- define "schemagate.chartAppVersion" -}}
{{- $ctx := .context }}
{{- if index ($ctx.Chart.Annotations | default dict) "schemagate.io/chart" }}
{{- $ctx.Chart.AppVersion }}
{{- else }}
{{- $found := "" }}
{{- $passed := toJson .values }}
{{- range $name, $sub := $ctx.Subcharts | default dict }}
{{- if index ($sub.Chart.Annotations | default dict) "schemagate.io/chart" }}
{{- if or (not $found) (eq (toJson $sub.Values) $passed) }}
{{- $found = $sub.Chart.AppVersion }}
{{- end }}
{{- end }}
{{- end }}
{{- $found }}
{{- end }}
{{- end }}

{{- define "schemagate.migrationsImage" -}}
{{- with get . "migrationsImage" }}
{{- . }}
{{- else }}
{{- include "schemagate.imageRef" (dict "image" .values.migrations.fromImage.image "key" "migrations.fromImage.image" "defaultTag" "" "global" (include "schemagate.globalRegistry" .)) }}
{{- end }}
{{- end }}

{{/*
dict "image" {registry, repository, tag, digest} "key" "image" "defaultTag" "1.0.0" "global" "".
registry is prepended to repository. global (global.imageRegistry) takes the place of the
registry: of registry when set, otherwise of a registry host that begins repository
(ghcr.io/schemagate/schemagate -> mirror.example/schemagate/schemagate).
*/}}
{{- define "schemagate.imageRef" -}}
{{- $img := .image }}
{{- $repo := required (printf "schemagate: %s.repository is required" .key) $img.repository }}
{{- $registry := $img.registry }}
{{- with .global }}
{{- $registry = . }}
{{- $first := splitList "/" $repo | first }}
{{- if and (contains "/" $repo) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- $repo = trimPrefix (printf "%s/" $first) $repo }}
{{- end }}
{{- end }}
{{- with $registry }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}
{{- end }}
{{- if $img.digest }}
{{- printf "%s@%s" $repo $img.digest }}
{{- else }}
{{- $tag := toString ($img.tag | default .defaultTag) }}
{{- printf "%s:%s" $repo (required (printf "schemagate: %s.tag is empty: set a tag or a digest" .key) $tag) }}
{{- end }}
{{- end }}

{{/*
The generation of a rollout: 8 hex digits of the sha256 of the schemagate image, the image the
migrations are copied from and migrations.checksum. A new image or migration set is a new
generation. It names the migration Job, and labels the pods of a Raft cluster.
*/}}
{{- define "schemagate.generation" -}}
{{- $migrations := "" }}
{{- if .values.migrations.fromImage.enabled }}
{{- $migrations = include "schemagate.migrationsImage" . }}
{{- end }}
{{- $in := printf "%s\n%s\n%s" (include "schemagate.image" .) $migrations (toString .values.migrations.checksum) }}
{{- sha256sum $in | trunc 8 }}
{{- end }}

{{/*
Labels for the including workload's pod template. With lock: raft, the generation: the raft
Service selects only the pods of the current one, so that the new pods of a rollout find each
other and not the old pods, whose members belong to the previous release's cluster and refuse
them (the cluster is named after the migration set).
*/}}
{{- define "schemagate.podLabels" -}}
{{- if eq .values.lock "raft" -}}
schemagate/raft-generation: {{ include "schemagate.generation" . | quote }}
{{- end }}
{{- end }}

{{/*
The Raft headless Service: peers resolve its DNS name to every pod's IP, ready or not (the
pods are unready on purpose while they wait), hence publishNotReadyAddresses. It selects the
workload's pods of the current generation (schemagate.podLabels).
*/}}
{{- define "schemagate.raftService" -}}
{{- if eq .values.lock "raft" }}
{{- $selector := required "schemagate: raftService needs selectorLabels" (get . "selectorLabels") }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "schemagate.raftServiceName" . }}
  {{- with get . "labels" }}
  labels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- toYaml $selector | nindent 4 }}
    {{- include "schemagate.podLabels" . | trim | nindent 4 }}
  ports:
    # A number, not the port's name: a classic init container's named ports are not looked up.
    - name: raft
      port: {{ int .values.raft.port }}
      targetPort: {{ int .values.raft.port }}
      protocol: TCP
{{- end }}
{{- end }}

{{- define "schemagate.raftServiceName" -}}
{{- printf "%s-schemagate-raft" (get . "name" | default .context.Release.Name | trunc 47 | trimSuffix "-") }}
{{- end }}

{{- define "schemagate.raftExpect" -}}
{{- $n := int (.values.raft.expect | default 0) }}
{{- if le $n 0 }}
{{- $n = int (get . "replicas" | default 0) }}
{{- end }}
{{- if le $n 0 }}
{{- fail "schemagate: lock: raft needs the number of peers: pass \"replicas\" to the snippet or set raft.expect" }}
{{- end }}
{{- $n }}
{{- end }}

{{/*
The helm test's deadline (tests.timeout, 30s): `check` retries an unreachable database until
it, so a dead database fails the test with exit 5 and a message instead of hanging for the
migration's timeout.
*/}}
{{- define "schemagate.testTimeout" -}}
{{- $t := get (get .values "tests" | default dict) "timeout" | default "30s" | toString }}
{{- if lt (int (include "schemagate.durationSeconds" $t)) 1 }}
{{- fail (printf "schemagate: tests.timeout: %q must be a positive duration (30s, 2m)" $t) }}
{{- end }}
{{- $t }}
{{- end }}

{{/* The seconds of a Go duration, rounded up: "1m30s" gives 90. */}}
{{- define "schemagate.durationSeconds" -}}
{{- $scale := dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001 "us" 0.000001 "µs" 0.000001 "ns" 0.000000001 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1 }}
{{- $total = addf $total (mulf (regexFind "^[0-9.]+" . | float64) (get $scale (regexReplaceAll "^[0-9.]+" . ""))) }}
{{- end }}
{{- ceil $total | int }}
{{- end }}

{{/*
A helm test Pod: `schemagate check` with the same settings, exit 0 when the schema is ready.
Its own deadline is tests.timeout; activeDeadlineSeconds, a minute longer, also ends a Pod
that never gets that far (an image that cannot be pulled).
*/}}
{{- define "schemagate.testPod" -}}
{{- $v := .values }}
{{- $args := merge (dict "command" "check") . }}
apiVersion: v1
kind: Pod
metadata:
  name: {{ get . "podName" | default (printf "%s-schemagate-test" (get . "name" | default .context.Release.Name | trunc 46 | trimSuffix "-")) }}
  {{- with get . "labels" }}
  labels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  annotations:
    {{- $hook := dict "helm.sh/hook" "test" "helm.sh/hook-delete-policy" "before-hook-creation,hook-succeeded" }}
    {{- toYaml (merge $hook (get . "annotations" | default dict)) | nindent 4 }}
spec:
  restartPolicy: Never
  activeDeadlineSeconds: {{ add (include "schemagate.durationSeconds" (include "schemagate.testTimeout" .)) 60 }}
  enableServiceLinks: false
  automountServiceAccountToken: false
  {{- with get . "serviceAccountName" }}
  serviceAccountName: {{ . }}
  {{- end }}
  {{- include "schemagate.ownPodSpec" . | nindent 2 }}
  containers:
    - {{ include "schemagate.container" $args | nindent 6 | trim }}
  {{- with include "schemagate.volumes" . }}
  volumes:
    {{- . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
The pod-level fields of the chart's own pods (the Job's and the helm test Pod's), after
restartPolicy and the ServiceAccount: pull secrets, security context, scheduling, and the init
containers. The init containers are, in order: sidecars (native sidecars: restartPolicy: Always,
so that they run beside schemagate and stop when it is done), extraInitContainers, and the copy
of the migrations.
*/}}
{{- define "schemagate.ownPodSpec" -}}
{{- $v := .values }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with include "schemagate.podSecurityContext" . | trim }}
securityContext:
  {{- . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $init := list }}
{{- with $v.sidecars }}
{{- include "schemagate.needsNativeSidecars" (dict "context" $.context "what" "sidecars" "instead" "run them another way, or leave sidecars empty") }}
{{- range . }}
{{- $init = append $init (set (deepCopy .) "restartPolicy" "Always") }}
{{- end }}
{{- end }}
{{- $init = concat $init ($v.extraInitContainers | default list) }}
{{- $copy := include "schemagate.copyMigrations" . | trim }}
{{- if or $init $copy }}
initContainers:
  {{- with $init }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with $copy }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Native sidecars (an init container with restartPolicy: Always) need Kubernetes 1.29 or later.
dict "context" $ "what" "..." "instead" "...".
*/}}
{{- define "schemagate.needsNativeSidecars" -}}
{{- $kube := .context.Capabilities.KubeVersion.Version }}
{{- if semverCompare "<1.29.0-0" $kube }}
{{- fail (printf "schemagate: %s need native sidecars, which Kubernetes has from 1.29 (this cluster is %s); %s" .what $kube .instead) }}
{{- end }}
{{- end }}

{{/*
OpenShift: with global.compatibility.openshift.adaptSecurityContext force, or auto (the
default) on a cluster that serves security.openshift.io/v1, the chart's default user and group
(65532) are left out of the security contexts, so that the restricted-v2 SCC assigns them from
the namespace's range. Values other than the defaults stay.
*/}}
{{- define "schemagate.openshift" -}}
{{- $os := get (get (get .values "global" | default dict) "compatibility" | default dict) "openshift" | default dict }}
{{- $mode := get $os "adaptSecurityContext" | default "auto" }}
{{- if not (has $mode (list "auto" "force" "disabled")) }}
{{- fail (printf "schemagate: global.compatibility.openshift.adaptSecurityContext: %q must be auto, force or disabled" $mode) }}
{{- end }}
{{- if or (eq $mode "force") (and (eq $mode "auto") (.context.Capabilities.APIVersions.Has "security.openshift.io/v1")) }}true{{ end }}
{{- end }}

{{/* ctx without the keys whose value is the chart's default ID, on OpenShift. dict "ctx" {} "keys" (list) "root" . */}}
{{- define "schemagate.securityContext" -}}
{{- $out := deepCopy (.ctx | default dict) }}
{{- if include "schemagate.openshift" .root }}
{{- range .keys }}
{{- if eq (toString (get $out .)) "65532" }}
{{- $_ := unset $out . }}
{{- end }}
{{- end }}
{{- end }}
{{- with $out }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{- define "schemagate.podSecurityContext" -}}
{{- include "schemagate.securityContext" (dict "ctx" .values.podSecurityContext "keys" (list "runAsUser" "runAsGroup" "fsGroup") "root" .) }}
{{- end }}

{{- define "schemagate.containerSecurityContext" -}}
{{- include "schemagate.securityContext" (dict "ctx" .values.containerSecurityContext "keys" (list "runAsUser" "runAsGroup") "root" .) }}
{{- end }}

{{/*
Settings that cannot work together, refused with the reason.
*/}}
{{- define "schemagate.validate" -}}
{{- $v := .values }}
{{- if and (eq $v.whenAhead "unready") (has .command (list "migrate" "wait")) }}
{{- fail (printf "schemagate: whenAhead: unready applies to serve (the native sidecar) and check; %s exits when it is done, so use ready or exit" .command) }}
{{- end }}
{{- range $v.extraEnv }}
{{- if and (has (get . "name") (list "SCHEMAGATE_DATABASE_URL" "DATABASE_URL" "SCHEMAGATE_RAFT_SECRET")) (hasKey . "value") }}
{{- fail (printf "schemagate: extraEnv: %s must not be a literal value; the chart takes secrets only from existing Secrets (database.existingSecret, raft.existingSecret)" (get . "name")) }}
{{- end }}
{{- end }}
{{- range $v.extraArgs }}
{{- if regexMatch "^--(database-url|raft-secret)(=|$)" (toString .) }}
{{- fail "schemagate: extraArgs: --database-url and --raft-secret must not be arguments (they show in `kubectl describe`); use database.existingSecret and raft.existingSecret" }}
{{- end }}
{{- end }}
{{- if and $v.migrations.fromImage.enabled (not (hasPrefix "/" (toString $v.migrations.dir))) }}
{{- fail (printf "schemagate: migrations.dir: %q must be an absolute path (the emptyDir is mounted there)" $v.migrations.dir) }}
{{- end }}
{{- end }}
