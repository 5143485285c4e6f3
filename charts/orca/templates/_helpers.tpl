{{/* The release's full name: the release name, with the chart's when it is not in it. */}}
{{- define "orca.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "orca.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "orca.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "orca.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "orca.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "orca.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Which store: "cluster" (the chart's own MySQLCluster), "dsn", "secret" or "none". */}}
{{- define "orca.storeMode" -}}
{{- if not .Values.store.enabled -}}none
{{- else if .Values.store.dsn -}}dsn
{{- else if .Values.store.existingSecret -}}secret
{{- else -}}cluster
{{- end -}}
{{- end -}}

{{/* The namespace whose clusters orca manages (the release's when the store is its own and one namespace is watched). */}}
{{- define "orca.checks" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicaCount) 1) -}}
{{- fail "leaderElection.enabled=false needs replicaCount 1: two operators without a Lease would both act" -}}
{{- end -}}
{{- if regexMatch "^mysql://[^@/]*:[^@/]*@" (.Values.store.dsn | default "") -}}
{{- fail "store.dsn must not hold the password (it would sit in the Deployment for anyone who can read it): put it in the Secret named by store.existingSecret, under store.passwordKey" -}}
{{- end -}}
{{- if and .Values.store.dsn (not .Values.store.existingSecret) -}}
{{- fail "store.dsn needs store.existingSecret: the Secret holding the store's password (under store.passwordKey)" -}}
{{- end -}}
{{- if and .Values.watchNamespace (eq (include "orca.storeMode" .) "cluster") (ne .Values.watchNamespace .Release.Namespace) -}}
{{- fail "with watchNamespace set, orca manages that namespace only: install the release there, or give an external store (store.dsn or store.existingSecret), or store.enabled=false" -}}
{{- end -}}
{{- end -}}

{{/* The rules orca needs where it manages MySQLClusters; tests/chart_rbac.rs shows each one is used. */}}
{{- define "orca.managerRules" -}}
# Each rule is what some behaviour of orca needs (tests/operator_rbac.rs
# removes each in turn and sees that behaviour refused).
- apiGroups: ["orca.dev"]
  resources: ["mysqlclusters"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["orca.dev"]
  resources: ["mysqlclusters/status"]
  verbs: ["patch"]
- apiGroups: ["orca.dev"]
  resources: ["failoverpolicies"]
  verbs: ["list", "watch"]
# pods: delete restarts a replica to be re-provisioned by a copy (its
# init container copies before mysqld starts)
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["list", "watch", "create", "patch"]
# the agent's NetworkPolicy: applied while the pods carry the agent,
# deleted when they no longer do
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "create"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
