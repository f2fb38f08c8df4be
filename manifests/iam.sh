#!/usr/bin/env bash
# Least-privilege identities for shardrun. Read it, set the three variables, run it once.
#   shardrun-worker     runs the tasks: reads and writes run state in the bucket, nothing else.
#   shardrun-scheduler  the scheduler service / whoever launches runs: starts executions with
#                       overrides and cancels them (roles/run.developer on the jobs), reads and
#                       writes run state, and acts as the worker identity when it deploys jobs.
set -euo pipefail
: "${PROJECT_ID:?set PROJECT_ID}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET (without gs://)}"

gcloud services enable run.googleapis.com storage.googleapis.com cloudscheduler.googleapis.com \
  artifactregistry.googleapis.com --project "$PROJECT_ID"

for sa in shardrun-worker shardrun-scheduler; do
  gcloud iam service-accounts describe "$sa@$PROJECT_ID.iam.gserviceaccount.com" --project "$PROJECT_ID" >/dev/null 2>&1 ||
    gcloud iam service-accounts create "$sa" --project "$PROJECT_ID" --display-name "$sa"
done
WORKER="shardrun-worker@$PROJECT_ID.iam.gserviceaccount.com"
SCHEDULER="shardrun-scheduler@$PROJECT_ID.iam.gserviceaccount.com"

# Objects only (read, create, overwrite with preconditions, delete); no bucket administration.
for member in "$WORKER" "$SCHEDULER"; do
  gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" --member "serviceAccount:$member" --role roles/storage.objectUser
done

# Executing a job *with overrides* (taskCount, timeout, env) and cancelling executions need
# roles/run.developer; roles/run.invoker alone can only execute a job as it is.
gcloud projects add-iam-policy-binding "$PROJECT_ID" --member "serviceAccount:$SCHEDULER" --role roles/run.developer --condition=None
# To deploy jobs that run as the worker identity.
gcloud iam service-accounts add-iam-policy-binding "$WORKER" --member "serviceAccount:$SCHEDULER" --role roles/iam.serviceAccountUser --project "$PROJECT_ID"

# Once the scheduler service is deployed (manifests/service.yaml): Cloud Scheduler calls it with
# the scheduler identity's OIDC token, which Cloud Run accepts only from an invoker.
if gcloud run services describe shardrun-scheduler --region "$REGION" --project "$PROJECT_ID" >/dev/null 2>&1; then
  gcloud run services add-iam-policy-binding shardrun-scheduler --region "$REGION" --project "$PROJECT_ID" \
    --member "serviceAccount:$SCHEDULER" --role roles/run.invoker
fi
