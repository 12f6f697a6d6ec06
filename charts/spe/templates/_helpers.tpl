{{- define "spe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "spe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "spe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "spe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "api") */}}
{{- define "spe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spe.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "spe.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The pod-level security context of every pod (Pod Security "restricted"). */}}
{{- define "spe.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container-level security context of every container. */}}
{{- define "spe.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A value as a quoted string: lists as JSON (SPE_TRUSTED_PROXIES='["10.42.0.0/16"]'); whole numbers without an exponent (values arrive as
float64, so 67108864 would otherwise print as 6.7108864e+07). */}}
{{- define "spe.scalar" -}}
{{- if kindIs "slice" . -}}
{{- toJson . | quote -}}
{{- else if and (kindIs "float64" .) (eq . (float64 (int64 .))) -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- toString . | quote -}}
{{- end -}}
{{- end -}}

{{/* Settings that are not secret, as SPE_* name: value (the ConfigMap's data). SPE_HOME is
a folder inside the claim, not its root: `spe serve` refuses a home others may read or
write, and a claim's root is often group- or world-writable; the service makes home 0700. */}}
{{- define "spe.settings" -}}
SPE_HOME: /var/lib/spe-state/home
SPE_HOST: 0.0.0.0
SPE_PORT: {{ .Values.api.port | quote }}
SPE_AUTH_MODE: oidc
SPE_DISPATCHER: celery
SPE_POLICY_FILE: /etc/spe/policy/policy.yaml
SPE_CATALOG_DIR: {{ .Values.catalog.path | quote }}
{{- if .Values.persistence.quarantine.existingClaim }}
SPE_QUARANTINE_DIR: /var/lib/spe-quarantine
{{- end }}
{{- if .Values.persistence.outbox.existingClaim }}
SPE_OUTBOX_DIR: /var/lib/spe-outbox
{{- end }}
{{- with .Values.caBundle }}{{ if .configMap }}
{{- range $service := list "database" "redis" "s3" }}{{ if index $.Values.caBundle $service }}
SPE_{{ upper $service }}_CA_FILE: /etc/spe/ca/{{ $.Values.caBundle.key }}
{{- end }}{{ end }}
{{- end }}{{ end }}
{{- range $key, $value := .Values.config }}
{{- if not (and (kindIs "string" $value) (eq $value "")) }}
{{- if not (and $.Values.persistence.quarantine.existingClaim (eq $key "quarantine_dir")) }}
{{- if not (and $.Values.persistence.outbox.existingClaim (eq $key "outbox_dir")) }}
SPE_{{ upper $key }}: {{ include "spe.scalar" $value }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Secret settings: env entries referencing Secrets by name, never their values. */}}
{{- define "spe.secretEnv" -}}
{{- with .Values.secrets.database }}{{- if .name }}
- name: SPE_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}}
{{- end }}{{ end }}
{{- with .Values.secrets.redis }}{{- if .name }}
- name: SPE_REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}}
{{- end }}{{ end }}
{{- with .Values.secrets.oidcClient }}{{- if .name }}
- name: SPE_OIDC_CLIENT_SECRET
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}}
{{- end }}{{ end }}
{{- with .Values.secrets.s3 }}{{- if .name }}
- name: SPE_S3_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .accessKeyKey | quote }}}}
- name: SPE_S3_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .secretKeyKey | quote }}}}
{{- end }}{{ end }}
{{- with .Values.secrets.keys }}{{- if .name }}
- name: SPE_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}}
{{- end }}{{ end }}
{{- with .Values.secrets.metrics }}{{- if .name }}
- name: SPE_METRICS_TOKEN
  valueFrom: {secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}}
{{- end }}{{ end }}
{{- end -}}

{{- define "spe.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "spe.fullname" .)) .Values.policy.existingConfigMap -}}
{{- end -}}

{{- define "spe.homeClaim" -}}
{{- default (printf "%s-home" (include "spe.fullname" .)) .Values.persistence.home.existingClaim -}}
{{- end -}}

{{/* Volumes of the API and worker pods. */}}
{{- define "spe.volumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  persistentVolumeClaim:
    claimName: {{ include "spe.homeClaim" . }}
- name: policy
  configMap:
    name: {{ include "spe.policyConfigMap" . }}
{{- if .Values.caBundle.configMap }}
- name: ca
  configMap:
    name: {{ .Values.caBundle.configMap }}
{{- end }}
{{- if .Values.catalog.existingClaim }}
- name: catalog
  persistentVolumeClaim:
    claimName: {{ .Values.catalog.existingClaim }}
    readOnly: true
{{- end }}
{{- if .Values.persistence.quarantine.existingClaim }}
- name: quarantine
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.quarantine.existingClaim }}
{{- end }}
{{- if .Values.persistence.outbox.existingClaim }}
- name: outbox
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.outbox.existingClaim }}
{{- end }}
{{- end -}}

{{- define "spe.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /var/lib/spe-state
- name: policy
  mountPath: /etc/spe/policy
  readOnly: true
{{- if .Values.caBundle.configMap }}
- name: ca
  mountPath: /etc/spe/ca
  readOnly: true
{{- end }}
{{- if .Values.catalog.existingClaim }}
- name: catalog
  mountPath: {{ .Values.catalog.path }}
  readOnly: true
{{- end }}
{{- if .Values.persistence.quarantine.existingClaim }}
- name: quarantine
  mountPath: /var/lib/spe-quarantine
{{- end }}
{{- if .Values.persistence.outbox.existingClaim }}
- name: outbox
  mountPath: /var/lib/spe-outbox
{{- end }}
{{- end -}}
