{{/* The chart name, shortened to the 63 characters a label value may hold. */}}
{{- define "secretsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: the release name, with the chart name unless it already holds it. */}}
{{- define "secretsync.fullname" -}}
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

{{- define "secretsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "secretsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "secretsync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "secretsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: secretsync
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "secretsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "secretsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "secretsync.subject" -}}
- kind: ServiceAccount
  name: {{ include "secretsync.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{- define "secretsync.peeringName" -}}
{{- default (include "secretsync.fullname" .) .Values.peering.name }}
{{- end }}

{{- define "secretsync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The operator's own Secrets in the release namespace: its state and the webhook key. */}}
{{- define "secretsync.ownSecrets" -}}
- secretsync-state
{{- if .Values.webhook.enabled }}
- {{ .Values.webhook.secretName }}
{{- end }}
{{- end }}

{{/*
Rules the operator needs in every namespace it serves (a ClusterRole's when it serves
all, a Role's in each listed one). docs/rbac.md explains each rule.
*/}}
{{- define "secretsync.namespacedRules" -}}
# Watch the namespaced kinds (kopf list+watch; the operator never writes their spec).
- apiGroups: [secretsync.io]
  resources: [secretsyncs, secretstores]
  verbs: [list, watch]
# Report Ready, observedGeneration and sync facts.
- apiGroups: [secretsync.io]
  resources: [secretsyncs/status, secretstores/status]
  verbs: [patch]
# Write the target Secrets, read credentials that stores reference, watch the Secrets it
# manages (kopf lists by label, which RBAC cannot narrow) for drift.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
# Each namespace authenticates as its own ServiceAccount: TokenRequest.
- apiGroups: [""]
  resources: [serviceaccounts/token]
  verbs: [create]
# Events on SecretSyncs (Created, Updated, Deleted, and why a sync failed).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- if .Values.rbac.rollouts }}
# spec.rollout.restart: restart workloads whose Secret changed (rbac.rollouts).
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, patch]
{{- end }}
{{- if .Values.rbac.sopsDocuments }}
# SOPS documents in ConfigMaps, watched so that a change syncs at once (rbac.sopsDocuments).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
{{- else if .Values.rbac.configMapCaRef }}
# A Vault store's caRef to a ConfigMap (rbac.configMapCaRef).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
{{- end }}
{{- end }}

{{/* Rules about ClusterSecretStores, which are cluster-scoped in either mode. */}}
{{- define "secretsync.clusterStoreRules" -}}
- apiGroups: [secretsync.io]
  resources: [clustersecretstores]
  verbs: [list, watch]
- apiGroups: [secretsync.io]
  resources: [clustersecretstores/status]
  verbs: [patch]
# A ClusterSecretStore's conditions[].namespaceSelector matches the SecretSync's
# namespace labels: get one namespace, never list them.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get]
{{- end }}

{{/* Checks that stop a broken install before anything is created. */}}
{{- define "secretsync.validate" -}}
{{- $sharded := gt (int .Values.sharding.shards) 0 }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) (not $sharded) }}
{{- fail "replicaCount > 1 needs peering.enabled=true or sharding.shards > 0: otherwise every replica would act on every SecretSync" }}
{{- end }}
{{- if and $sharded .Values.peering.enabled }}
{{- fail "sharding.shards > 0 needs peering.enabled=false: sharded replicas take over each other's shards, they need no peering" }}
{{- end }}
{{- if and .Values.webhook.enabled (not .Values.webhook.secretName) }}
{{- fail "webhook.enabled=true needs webhook.secretName: the Secret (in the release namespace) whose `key` signs webhook calls" }}
{{- end }}
{{- end }}
