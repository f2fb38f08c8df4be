/**
 * The dashboard: server-rendered pages over the same status objects the JSON API serves. Pure
 * functions from data to a complete HTML document; the HTTP layer (src/service/routes-pages.ts)
 * reads the store and calls them. This file is the room's door: the service loads it on first use.
 *
 * Each page carries a small inline script (client*.ts). A live run page polls
 * `GET {basePath}/v1/runs/{id}` every second and updates the shard grid, counters and chart in
 * place; the runs list refreshes itself while a run in it is live. Buttons POST to the API
 * (`…:rerun` with the body its controls make, `…:cancel`, `/v1/schedules/{name}:fire`).
 *
 * Auth from the browser: pages cannot set headers on navigation, so the script sends
 * `Authorization: Bearer <token>` on its own requests, with the token taken from the page URL's
 * `?token=` (then remembered in localStorage under `shardrun.token`) or from localStorage. Links
 * between pages carry a `?token=` that the page was opened with. Behind Cloud Run's IAM (an ID
 * token added by a proxy such as `gcloud run services proxy`) no token is needed at all. A
 * browser that comes without credentials gets the sign-in page, which explains this.
 */
export type { HistoryPoint } from "./html.js";
export { MAX_FAILED_ROWS } from "./failures.js";
export { RERUN_REASONS } from "./finish.js";
export { cellState, redoneShards, renderRunPage, runFields, type CellState, type RunPageOptions } from "./run-page.js";
export { SINCE_CHOICES, renderRunsPage, type RunSummaryView, type RunsFilters, type RunsPageOptions } from "./runs-page.js";
export { renderSchedulesPage, type ScheduleView, type SchedulesPageOptions, type UnavailableScheduleJob } from "./schedules-page.js";
export { renderNoticePage, renderPlanningPage, type NoticePageOptions, type PlanningPageOptions } from "./notice-pages.js";
export { renderSignInPage, type SignInPageOptions } from "./sign-in-page.js";
