{{/* The chart's name, or nameOverride. */}}
{{- define "sandpit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release-qualified name of every object. */}}
{{- define "sandpit.fullname" -}}
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

{{- define "sandpit.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sandpit.labels" -}}
helm.sh/chart: {{ include "sandpit.chart" . }}
app.kubernetes.io/name: {{ include "sandpit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The server pods: Deployment selector, Service, PDB, NetworkPolicies. */}}
{{- define "sandpit.serverSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sandpit.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{/* The label the Kubernetes backend puts on every sandbox pod. */}}
{{- define "sandpit.sandboxSelectorLabels" -}}
app.kubernetes.io/component: sandbox
{{- end -}}

{{- define "sandpit.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sandpit.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sandpit.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The sandbox namespace: sandboxes.namespace, else "<release>-sandboxes". */}}
{{- define "sandpit.sandboxNamespace" -}}
{{- default (printf "%s-sandboxes" .Release.Name) .Values.sandboxes.namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Whether the sandbox pods have a namespace to themselves. */}}
{{- define "sandpit.sandboxNamespaceIsOwn" -}}
{{- if ne (include "sandpit.sandboxNamespace" .) .Release.Namespace -}}true{{- end -}}
{{- end -}}

{{- define "sandpit.databaseSecretName" -}}
{{- default (printf "%s-database" (include "sandpit.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{- define "sandpit.authSecretName" -}}
{{- default (printf "%s-auth" (include "sandpit.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* server.public_url: publicUrl, else from the ingress host. */}}
{{- define "sandpit.publicUrl" -}}
{{- if .Values.publicUrl -}}
{{- .Values.publicUrl -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" (not (empty .Values.ingress.tlsSecretName))) .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{/*
sandpit.toml as a map: what the chart sets, with .Values.config merged over it. The chart owns
the container's paths and port; everything else may be overridden. The docker environment is
off: its rootless engine needs user namespaces that a restricted sandbox pod does not get.
*/}}
{{- define "sandpit.configMap" -}}
{{- $k := .Values.kubernetes -}}
{{- $kube := dict
      "namespace" (include "sandpit.sandboxNamespace" .)
      "image" (default (include "sandpit.image" .) $k.image)
      "agent_port" (int $k.agentPort)
      "warm_pods" (int $k.warmPods)
      "workspace" $k.workspace
      "workspace_size_mb" (int $k.workspaceSizeMb) -}}
{{- if $k.runtimeClassName -}}{{- $_ := set $kube "runtime_class_name" $k.runtimeClassName -}}{{- end -}}
{{- if $k.storageClass -}}{{- $_ := set $kube "storage_class" $k.storageClass -}}{{- end -}}
{{- $chart := dict
      "data_dir" "/var/lib/sandpit"
      "server" (dict "bind" "0.0.0.0:8080" "trust_forwarded_for" .Values.ingress.enabled)
      "kubernetes" $kube
      "docker" (dict "enabled" false) -}}
{{- $merged := mustMergeOverwrite (dict) $chart (deepCopy .Values.config) -}}
{{- $_ := set $merged "data_dir" "/var/lib/sandpit" -}}
{{- $_ := set $merged.server "bind" "0.0.0.0:8080" -}}
{{- toJson $merged -}}
{{- end -}}

{{/*
A TOML table from a map: its scalar and array keys first (JSON literals are TOML literals for
strings, numbers, booleans and arrays of them), then a [header] and the body of each sub-table.
Called with (list map "dotted.prefix").
*/}}
{{- define "sandpit.tomlTable" -}}
{{- $m := index . 0 -}}
{{- $prefix := index . 1 -}}
{{- range $key := keys $m | sortAlpha -}}
{{- $v := index $m $key -}}
{{- if not (kindIs "map" $v) }}
{{ $key }} = {{ toJson $v }}
{{- end -}}
{{- end -}}
{{- range $key := keys $m | sortAlpha -}}
{{- $v := index $m $key -}}
{{- if kindIs "map" $v -}}
{{- $name := ternary $key (printf "%s.%s" $prefix $key) (empty $prefix) }}

[{{ $name }}]
{{- include "sandpit.tomlTable" (list $v $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Fails the render on settings that cannot work. */}}
{{- define "sandpit.validate" -}}
{{- if not (has .Values.kubernetes.workspace (list "pvc" "pod")) -}}
{{- fail (printf "kubernetes.workspace must be \"pvc\" or \"pod\", not %q" .Values.kubernetes.workspace) -}}
{{- end -}}
{{- if and .Values.sandboxes.createNamespace (not (include "sandpit.sandboxNamespaceIsOwn" .)) -}}
{{- fail "sandboxes.createNamespace: the sandbox namespace is the release's own namespace, which exists already; set sandboxes.createNamespace=false" -}}
{{- end -}}
{{- if and .Values.auth.secret (lt (len .Values.auth.secret) 32) -}}
{{- fail "auth.secret must be at least 32 bytes" -}}
{{- end -}}
{{- if and .Values.apps.domain .Values.ingress.enabled (or (eq .Values.apps.domain .Values.ingress.host) (hasSuffix (printf ".%s" .Values.apps.domain) .Values.ingress.host)) -}}
{{- fail "apps.domain must not be ingress.host or a parent of it: apps would share the site's cookies" -}}
{{- end -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail "replicaCount must be at least 1" -}}
{{- end -}}
{{- end -}}
