# The task image: compiled JavaScript and production dependencies only, on a small Node 24 base (the major the project pins for builds and tests).
# Tasks start often (every shard claim after a retry, every launch): no TypeScript loader, no
# dev dependencies, no package manager work at start.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json tsconfig.image.json ./
COPY src ./src
COPY jobs ./jobs
# The worker is also bundled (dist/worker.mjs, the entrypoint: tasks start from one module).
# esbuild stays after the prune (a production dependency): `serve` builds the jobs it starts
# from dist/jobs, while tasks only import the bundle their run recorded.
RUN npx tsc -p tsconfig.image.json \
  && node -e 'import("./dist/src/config/bundle.js").then((m) => m.bundleWorker("dist"))' \
  && npm prune --omit=dev --no-audit --no-fund
# Jobs' data files (e.g. research-sweep's bundled questions), without their TypeScript sources.
RUN find jobs -name '*.json' -exec sh -c 'mkdir -p "job-data/$(dirname "$1")" && cp "$1" "job-data/$1"' _ {} \;

FROM node:24-slim
ENV NODE_ENV=production SHARDRUN_LOG_FORMAT=json
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/job-data/jobs ./jobs
COPY bin ./bin
USER node
# The task entrypoint: the bundled worker. It loads the job from the bundle its run recorded in
# the store (gs://…), so the image's own jobs/ need not match the run's code. `node
# bin/shardrun.js <command>` is there for the scheduler service and for people.
ENTRYPOINT ["node", "dist/worker.mjs"]
