/** The job author's surface: define a job, and the errors that steer item retries. */
export { defineJob, isJob } from "./core/job.js";
export type { Job, JobContext, JobDefinition, JobLogger, ShardPolicy, CheckpointCadence, StepOptions, StepRecording } from "./core/job.js";
export { createTestContext } from "./worker/test-context.js";
export { NonRetriableError, RetryAfterError, ShardrunError } from "./core/errors.js";
export type { RetryPolicy } from "./core/backoff.js";
