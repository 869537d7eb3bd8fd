{{/*
The chart name, shortened to the 63 characters of a DNS label.
*/}}
{{- define "modelbay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name, plus the chart name unless the
release name already contains it.
*/}}
{{- define "modelbay.fullname" -}}
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

{{- define "modelbay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "modelbay.labels" -}}
helm.sh/chart: {{ include "modelbay.chart" . }}
{{ include "modelbay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the pods (the Deployment's selector: never change them in an upgrade).
*/}}
{{- define "modelbay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelbay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modelbay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelbay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret every credential is read from: the chart's own with secret.create, else
secret.existingSecret.
*/}}
{{- define "modelbay.secretName" -}}
{{- if .Values.secret.create }}
{{- include "modelbay.fullname" . }}
{{- else }}
{{- required "secret.existingSecret: name the Secret with database-url and admin-key (or set secret.create: true)" .Values.secret.existingSecret }}
{{- end }}
{{- end }}

{{- define "modelbay.image" -}}
{{- $repository := required "image.repository is required" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/*
A whole number of seconds (or bytes) from the values: an integer, or a string of digits.
Call with (list "name.of.value" $value); fails on anything else.
*/}}
{{- define "modelbay.count" -}}
{{- $name := index . 0 }}
{{- $value := index . 1 }}
{{- if kindIs "string" $value }}
{{- if not (regexMatch "^(0|[1-9][0-9]*)$" $value) }}
{{- fail (printf "%s must be a whole number >= 0, not %q" $name $value) }}
{{- end }}
{{- else if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) }}
{{- if or (lt (float64 $value) 0.0) (ne (float64 (int64 $value)) (float64 $value)) }}
{{- fail (printf "%s must be a whole number >= 0, not %v" $name $value) }}
{{- end }}
{{- else }}
{{- fail (printf "%s must be a whole number >= 0, not %v" $name $value) }}
{{- end }}
{{- int64 $value }}
{{- end }}

{{- define "modelbay.shutdownGrace" -}}
{{- include "modelbay.count" (list "shutdownGrace" .Values.shutdownGrace) }}
{{- end }}

{{- define "modelbay.drainTimeout" -}}
{{- include "modelbay.count" (list "drainTimeout" .Values.drainTimeout) }}
{{- end }}

{{- define "modelbay.preStopSleepSeconds" -}}
{{- include "modelbay.count" (list "preStopSleepSeconds" (.Values.preStopSleepSeconds | default 0)) }}
{{- end }}

{{/*
The pod's grace period: the preStop sleep, the server's shutdown grace and drain timeout,
and 10 seconds to spare, so the kubelet's SIGKILL never cuts the drain short.
*/}}
{{- define "modelbay.terminationGracePeriodSeconds" -}}
{{- add (include "modelbay.preStopSleepSeconds" . | int64) (include "modelbay.shutdownGrace" . | int64) (include "modelbay.drainTimeout" . | int64) 10 }}
{{- end }}

{{/*
Variables the Deployment sets from their own values; `config` may not set them too (env
would silently win over the ConfigMap's envFrom).
*/}}
{{- define "modelbay.managedVariables" -}}
{{- list "MODELBAY_LISTEN" "MODELBAY_GRPC_LISTEN" "MODELBAY_METRICS_LISTEN" "MODELBAY_REGISTRY" "MODELBAY_ARTIFACTS" "MODELBAY_ADMIN_KEY_FILE" "MODELBAY_REPLICA_ID" "MODELBAY_ADVERTISE_ADDRESS" "MODELBAY_SHUTDOWN_GRACE" "MODELBAY_DRAIN_TIMEOUT" "MODELBAY_CACHE_DIR" "MODELBAY_CACHE_MAX_BYTES" "MODELBAY_DATA_DIR" "AWS_ENDPOINT" "AWS_ALLOW_HTTP" "AWS_DEFAULT_REGION" "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "POD_IP" | toJson }}
{{- end }}

{{/*
Checks of the values that the templates rely on; included by the Deployment.
*/}}
{{- define "modelbay.validate" -}}
{{- $managed := include "modelbay.managedVariables" . | fromJsonArray }}
{{- range $key, $value := .Values.config }}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*$" $key) }}
{{- fail (printf "config.%s: not an environment variable name" $key) }}
{{- end }}
{{- if has $key $managed }}
{{- fail (printf "config.%s is set by the chart from its own value (see values.yaml); remove it from config" $key) }}
{{- end }}
{{- if or (kindIs "map" $value) (kindIs "slice" $value) }}
{{- fail (printf "config.%s must be a string, number or boolean" $key) }}
{{- end }}
{{- end }}
{{- if not .Values.artifacts }}
{{- fail "artifacts: set the shared artifact store (s3://bucket/prefix); the default, the data directory, is per pod" }}
{{- end }}
{{- if le (include "modelbay.count" (list "cache.maxBytes" .Values.cache.maxBytes) | int64) 0 }}
{{- fail "cache.maxBytes must be > 0" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
