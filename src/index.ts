/** The job author's surface: define a job, and the errors that steer item retries. */
export { defineJob, isJob } from "./core/job.js";
export type { Job, JobContext, JobDefinition, JobLogger, ShardPolicy, CheckpointCadence } from "./core/job.js";
export { NonRetriableError, RetryAfterError, ShardrunError } from "./core/errors.js";
export type { RetryPolicy } from "./core/backoff.js";
