#!/usr/bin/env bash
# Regenerates what deploy/k8s derives from the rest of the repository, then renders the overlays:
#   - the gateway's NGINX site per overlay, from `task-api cluster nginx-config` / `gateway-config`
#     with the in-cluster Service names (needs the built CLI: npm run build);
#   - overlays/split/gateway/openapi.json, a copy of docs/openapi.json (kustomize reads files only
#     below the overlay);
#   - rendered/<overlay>.yaml, `kubectl kustomize` of each overlay (kubectl's built-in kustomize).
# npm run k8s:render runs it; test/system/k8s-manifests.test.ts fails while any of these is stale.
set -euo pipefail
cd "$(dirname "$0")/../.."
cli=(node dist/cli.js)
k8s=deploy/k8s

"${cli[@]}" cluster nginx-config --listen 8080 --server-name _ --upstream task-api:3000 \
  --access-log /dev/stdout > "$k8s/overlays/monolith/gateway/task-api.conf"

"${cli[@]}" cluster gateway-config --listen 8080 --server-name _ \
  --service auth=task-api-auth:3000 --service users=task-api-users:3000 \
  --service tasks=task-api-tasks:3000 --service notifications=task-api-notifications:3000 \
  --openapi /etc/nginx/conf.d/openapi.json --access-log /dev/stdout > "$k8s/overlays/split/gateway/gateway.conf"

cp docs/openapi.json "$k8s/overlays/split/gateway/openapi.json"

for overlay in monolith split; do
  {
    echo "# Generated: kubectl kustomize deploy/k8s/overlays/$overlay (npm run k8s:render). Do not edit:"
    echo "# change the overlay and render again; test/system/k8s-manifests.test.ts validates this file."
    kubectl kustomize "$k8s/overlays/$overlay"
  } > "$k8s/rendered/$overlay.yaml"
done
echo "rendered: $k8s/rendered/monolith.yaml $k8s/rendered/split.yaml"
