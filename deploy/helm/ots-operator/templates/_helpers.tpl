{{/* Chart name, overridable with nameOverride. */}}
{{- define "ots-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name alone when it already contains the chart name
(so `helm install ots-operator` gives `ots-operator`, not `ots-operator-ots-operator`).
*/}}
{{- define "ots-operator.fullname" -}}
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

{{- define "ots-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of the release carries. */}}
{{- define "ots-operator.labels" -}}
helm.sh/chart: {{ include "ots-operator.chart" . }}
{{ include "ots-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator pods; they never change after install. */}}
{{- define "ots-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ots-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of the CRD. It is shared by every release in the cluster, so it carries no release name: a CRD
installed by one release (or by the rendered manifests) can be applied again by another without a conflict.
*/}}
{{- define "ots-operator.crdLabels" -}}
helm.sh/chart: {{ include "ots-operator.chart" . }}
app.kubernetes.io/name: {{ include "ots-operator.name" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ots-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ots-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ots-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The rules the operator needs on the namespaces it watches; shared by the ClusterRole (all namespaces)
and the per-namespace Roles (watchNamespaces), so both modes grant exactly the same.
*/}}
{{- define "ots-operator.watchRules" -}}
# Watch OneTimeShares (the controller's informer) and patch them to add or remove the
# `ots.dev/burn` finalizer. No create/delete/update: the operator never makes or removes shares.
- apiGroups: ["ots.dev"]
  resources: ["onetimeshares"]
  verbs: ["get", "list", "watch", "patch"]
# Write the share's status (link, phase, conditions).
- apiGroups: ["ots.dev"]
  resources: ["onetimeshares/status"]
  verbs: ["patch", "update"]
# Clusters that enforce OwnerReferencesPermissionEnforcement (e.g. OpenShift) check this
# subresource when the operator sets finalizers on a share.
- apiGroups: ["ots.dev"]
  resources: ["onetimeshares/finalizers"]
  verbs: ["update"]
# Watch OtsServers (the server status controller's informer) and write their status (Ready,
# the resolved API version). The operator never creates, changes or deletes a server.
- apiGroups: ["ots.dev"]
  resources: ["otsservers"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["ots.dev"]
  resources: ["otsservers/status"]
  verbs: ["patch", "update"]
# Watch OtsNotifications (which endpoints a share's transitions are sent to) and write their
# status (Ready, the last delivery's outcome). The operator never creates, changes or deletes one.
- apiGroups: ["ots.dev"]
  resources: ["otsnotifications"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["ots.dev"]
  resources: ["otsnotifications/status"]
  verbs: ["patch", "update"]
# Read the one Secret a share names (and its passphrase and server-credentials Secrets) by a
# targeted get. Deliberately no list/watch: the operator never caches the cluster's Secrets, so
# neither its memory nor its rights grow with them.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- if .Values.secretWrites.enabled }}
# secretWrites.enabled: spec.generate creates the Secret a share generates a value into, or patches
# an absent key into one the operator made. Still no list/watch/delete; the admission policy
# `<release>-secret-writes` refuses any write to a Secret not labelled ots.dev/managed-by=ots-operator.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "patch"]
{{- end }}
# Record Events on shares (Shared, Received, Warning reasons) so `kubectl describe` explains
# what happened; events.k8s.io is the current API, core events for older tooling.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
Seconds of a ttl such as "90s", "30m", "24h" or "7d" (the format of a share's spec.ttl; the values
schema guarantees it); fails for less than 60 seconds, which no share can ask for.
*/}}
{{- define "ots-operator.ttlSeconds" -}}
{{- $unit := trunc -1 . }}
{{- $seconds := mul (trimSuffix $unit . | int) (get (dict "s" 1 "m" 60 "h" 3600 "d" 86400) $unit) }}
{{- if lt $seconds 60 }}
{{- fail (printf "admissionPolicy.maxTtl %q is shorter than 60s, the shortest ttl a share may ask for" .) }}
{{- end }}
{{- $seconds }}
{{- end }}

{{/*
A security context (pod or container) from (list CONTEXT OPENSHIFT): with OPENSHIFT true, the fixed
runAsUser, runAsGroup and fsGroup are left out so that OpenShift's restricted SCC assigns the uid.
*/}}
{{- define "ots-operator.securityContext" -}}
{{- $context := deepCopy (index . 0 | default dict) }}
{{- if index . 1 }}
{{- $context = omit $context "runAsUser" "runAsGroup" "fsGroup" }}
{{- end }}
{{- with $context }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
The default OTS server: ots.url, or the public service when the installer accepted it explicitly.
Shared Secrets go there, so the chart never picks it silently.
*/}}
{{- define "ots-operator.otsUrl" -}}
{{- if .Values.ots.url }}
{{- .Values.ots.url }}
{{- else if .Values.ots.acceptPublicService }}
{{- "https://onetimesecret.com" }}
{{- else }}
{{- fail "ots.url is not set: name the Onetime Secret server that shared Secrets go to (--set ots.url=https://ots.example.com), or --set ots.acceptPublicService=true to send them to the public https://onetimesecret.com" }}
{{- end }}
{{- end }}

{{/*
The `--allow-server-url` values, one a line: `ots.allowedServerUrls`, plus the URL of every
`servers` entry, so that a server the chart creates is one the operator may call. The operator
replaces its default allowlist (the official onetimesecret.com hosts) with any list it is given,
so with servers and no `ots.allowedServerUrls` the official hosts are named here to keep them
allowed (the same list as OFFICIAL_HOSTS in src/config.rs; tests/server_objects.rs checks).
*/}}
{{- define "ots-operator.allowServerUrls" -}}
{{- $urls := .Values.ots.allowedServerUrls }}
{{- if and .Values.servers (not $urls) }}
{{- $urls = list "https://onetimesecret.com" "https://us.onetimesecret.com" "https://eu.onetimesecret.com" "https://ca.onetimesecret.com" "https://uk.onetimesecret.com" "https://nz.onetimesecret.com" }}
{{- end }}
{{- range .Values.servers }}
{{- if .url }}
{{- $urls = append $urls (trimSuffix "/" .url) }}
{{- end }}
{{- end }}
{{- range uniq $urls }}
{{ . }}
{{- end }}
{{- end }}
